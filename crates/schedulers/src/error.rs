//! Errors of scheduler configuration and stepping. Every message says which key or call is wrong
//! and what to do about it.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SchedulerError {
    /// `scheduler_config.json` is not JSON or a key has the wrong type.
    #[error(
        "the scheduler config is not valid: {reason}; fix `scheduler/scheduler_config.json` or re-download the model"
    )]
    Config { reason: String },

    /// A key has a value diffusers does not know either.
    #[error("scheduler config key `{key}` is `{value}`, expected one of {expected}")]
    InvalidValue { key: &'static str, value: String, expected: &'static str },

    /// A valid diffusers option that this crate does not implement (yet).
    #[error("{scheduler} does not support `{key}` = {value} here: {hint}")]
    Unsupported { scheduler: &'static str, key: &'static str, value: String, hint: &'static str },

    /// The number of inference steps cannot be scheduled.
    #[error("cannot run {steps} inference steps: {reason}")]
    Steps { steps: usize, reason: String },

    /// An unknown `--scheduler` name.
    #[error("unknown scheduler `{0}`: choose one of ddim, euler, euler-a, lcm, dpm, pndm")]
    UnknownKind(String),

    /// `step` or `scale_model_input` was called with an index past the schedule.
    #[error("step index {index} is past the end of the schedule ({len} steps)")]
    StepIndex { index: usize, len: usize },

    /// A multistep solver was stepped out of order (it keeps the previous model outputs).
    #[error(
        "{scheduler} must be stepped in order: expected step {expected}, got {got}; build a new scheduler for a new generation"
    )]
    OutOfOrder { scheduler: &'static str, expected: usize, got: usize },

    /// A stochastic scheduler needs Gaussian noise for this step.
    #[error(
        "{scheduler} needs fresh Gaussian noise of the sample's shape at step {index} (see `Scheduler::needs_noise`)"
    )]
    MissingNoise { scheduler: &'static str, index: usize },

    /// Tensors given to `step` disagree in shape.
    #[error("`{what}` has shape {got:?}, the sample has shape {want:?}")]
    Shape { what: &'static str, got: Vec<usize>, want: Vec<usize> },
}
