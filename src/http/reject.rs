//! The one place that maps domain errors and rejections to status codes and JSON bodies.
