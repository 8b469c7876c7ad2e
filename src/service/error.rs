use crate::domain::ValidationError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input: names the field and what is accepted.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("no {kind} matches {reference:?}")]
    NotFound { kind: &'static str, reference: String },
    #[error("{reference:?} matches several keys; use a longer id prefix or the full id: {}", candidates.join(", "))]
    Ambiguous { reference: String, candidates: Vec<String> },
    /// A well-formed request the rules refuse (a deduction past the balance, a top-up of a key
    /// that is not prepaid…). The message says why and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The master key is missing, malformed or not the one the key was sealed with.
    #[error("{0}")]
    MasterKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// True when the request itself was at fault (bad input, unknown or ambiguous reference,
    /// refused by a rule), as opposed to the environment (database, master key).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ServiceError::Invalid(_)
                | ServiceError::NotFound { .. }
                | ServiceError::Ambiguous { .. }
                | ServiceError::Refused(_)
        )
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(ValidationError::new(field, message))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
