//! Hand-off of live TCP sockets between a service and the MIH-User (SCM_RIGHTS).
