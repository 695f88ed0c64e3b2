//! Handover statistics (Table I) and histogram images for the demo and benchmarks.
