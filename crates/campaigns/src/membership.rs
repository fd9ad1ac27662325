//! Segment membership by hash. An audience names segments by id, and a user is in about a
//! dozen: comparing the ids as strings costs a dozen string comparisons per named segment
//! per campaign, on strings scattered across the heap. Instead a compiled campaign keeps
//! the hashes of its audience's segment ids ([`AudienceKeys`]), the user's segments are
//! hashed once per cause ([`UserSegments`]), and membership is a binary search over
//! integers; a hash that matches is confirmed by comparing the ids, so a collision never
//! counts a user in.

use std::hash::BuildHasher;

use herald_proto::trigger::v1::Audience;

/// The hash of a segment id (in memory only: never stored).
fn hash(segment_id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x0073_6567_6d65_6e74).hash_one(segment_id)
}

/// The hashes of an audience's included and excluded segment ids, in their order.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudienceKeys {
    pub include: Vec<u64>,
    pub exclude: Vec<u64>,
}

impl AudienceKeys {
    pub fn new(audience: &Audience) -> AudienceKeys {
        AudienceKeys {
            include: audience
                .include_segment_ids
                .iter()
                .map(|id| hash(id))
                .collect(),
            exclude: audience
                .exclude_segment_ids
                .iter()
                .map(|id| hash(id))
                .collect(),
        }
    }
}

/// The segments a user is in, as segmentation computed them for one cause, hashed.
pub(crate) struct UserSegments<'a> {
    ids: &'a [String],
    /// (hash, index in `ids`), sorted.
    keys: Vec<(u64, u32)>,
}

impl<'a> UserSegments<'a> {
    pub fn new(ids: &'a [String]) -> UserSegments<'a> {
        let mut keys: Vec<(u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (hash(id), i as u32))
            .collect();
        keys.sort_unstable();
        UserSegments { ids, keys }
    }

    /// Whether the user is in the segment `id`, whose hash is `key`.
    pub fn contains(&self, key: u64, id: &str) -> bool {
        let from = self.keys.partition_point(|(k, _)| *k < key);
        self.keys[from..]
            .iter()
            .take_while(|(k, _)| *k == key)
            .any(|(_, i)| self.ids[*i as usize] == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_by_id() {
        let ids: Vec<String> = (0..50).map(|i| format!("seg_{i:032x}")).collect();
        let user = UserSegments::new(&ids[10..30]);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(user.contains(hash(id), id), (10..30).contains(&i), "{id}");
        }
        // A hash that matches but an id that does not is not membership.
        assert!(!user.contains(hash(&ids[12]), "seg_other"));
        assert!(!UserSegments::new(&[]).contains(hash("seg_a"), "seg_a"));
    }
}
