//! The open-descriptor limit of a process that holds one or more descriptors per client.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises this process's soft descriptor limit to its hard limit (what its unit's
/// `LimitNOFILE=` or the service manager's default allows) and returns the limit it now has.
pub fn raise_to_hard_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if limit.current != limit.maximum {
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                "cannot raise the descriptor limit to {:?}: {e}",
                limit.maximum
            );
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_becomes_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        let now = raise_to_hard_limit();
        assert_eq!(Some(now), hard.or(Some(u64::MAX)));
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}
