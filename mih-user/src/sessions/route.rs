//! Route changes through rtnetlink (path switch and flow hold), optionally in another network namespace.
