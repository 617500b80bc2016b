//! The link-dataset rule: what a completion reports about the Discord user's
//! earlier link in the same PID.

use serde::{Deserialize, Serialize};

/// The two link fields of a completed result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkOutcome {
    /// `true` when this Discord user was linked to a different Roblox account
    /// in this PID's dataset before this verification.
    pub link_changed: bool,
    /// That earlier Roblox id when `link_changed` is true, else `None`.
    pub previous_roblox_id: Option<String>,
}

/// Given the Roblox id this Discord user had in the PID's dataset before (if
/// any) and the Roblox id just verified, says whether the link changed.
///
/// A first link, or re-verifying the same account, is not a change.
pub fn link_outcome(previous: Option<&str>, verified_roblox_id: &str) -> LinkOutcome {
    match previous {
        Some(prev) if prev != verified_roblox_id => LinkOutcome {
            link_changed: true,
            previous_roblox_id: Some(prev.to_owned()),
        },
        _ => LinkOutcome {
            link_changed: false,
            previous_roblox_id: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(Option<&str>, &str, bool, Option<&str>)] = &[
            (None, "1", false, None),
            (Some("1"), "1", false, None),
            (Some("1"), "2", true, Some("1")),
            (Some(""), "2", true, Some("")),
        ];
        for &(prev, new, changed, old) in cases {
            let o = link_outcome(prev, new);
            assert_eq!(o.link_changed, changed, "{prev:?} -> {new}");
            assert_eq!(o.previous_roblox_id.as_deref(), old, "{prev:?} -> {new}");
        }
    }
}
