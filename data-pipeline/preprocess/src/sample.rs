//! The sample types a record may arrive in (physical units), converted to f64 for processing.

/// A sample value the pipeline accepts.
pub trait Sample: Copy {
    /// The value as f64 (NaN stays NaN and means "missing").
    fn to_f64(self) -> f64;
}

impl Sample for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Sample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}
