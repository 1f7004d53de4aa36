//! Pooling (written by a helper).
