//! Registry client (placeholder, being written).
