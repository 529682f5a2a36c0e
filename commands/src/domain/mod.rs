//! The pure account aggregate.
