//! The mih-user daemon (feature `daemon`): tokio drivers around the sans-IO orchestrator.
