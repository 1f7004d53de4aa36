//! Losses (written by a helper).
