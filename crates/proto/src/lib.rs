//! Herald's v1 contracts: messages, clients and servers generated from `proto/`, with
//! modules that mirror the protobuf packages, and a file descriptor set per package for
//! server reflection. The tonic clients and servers come with the `grpc` feature.

#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

/// `herald.*` packages.
pub mod herald {
    /// `herald.common.v1`: types shared by every service.
    pub mod common {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.common.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.common.v1.bin"));
        }
    }
    /// `herald.ingest.v1`: events and traits in.
    pub mod ingest {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.ingest.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.ingest.v1.bin"));
        }
    }
    /// `herald.segmentation.v1`: rule-based user segments.
    pub mod segmentation {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.segmentation.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.segmentation.v1.bin"));
        }
    }
    /// `herald.trigger.v1`: campaigns and the decisions to send them.
    pub mod trigger {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.trigger.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.trigger.v1.bin"));
        }
    }
    /// `herald.delivery.v1`: live streams, the inbox, preferences and channels.
    pub mod delivery {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.delivery.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.delivery.v1.bin"));
        }
    }
    /// `herald.analytics.v1`: interactions, conversions and campaign statistics.
    pub mod analytics {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/herald.analytics.v1.rs"));
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.analytics.v1.bin"));
        }
    }
}

pub use herald::{analytics, common, delivery, ingest, segmentation, trigger};

/// An internal request that carries a list of entries for one workspace. Consecutive
/// requests of one workspace can be merged into one call (the outbox relay does), and
/// the workspace is what an internal handler checks the caller against.
pub trait WorkspaceBatch {
    /// The workspace the request acts on.
    fn workspace_id(&self) -> &str;
    /// How many entries it carries.
    fn len(&self) -> usize;
    /// Whether it carries none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends `other`'s entries (of the same workspace) after this request's.
    fn append(&mut self, other: Self);
}

macro_rules! workspace_batch {
    ($($request:ty => $entries:ident),* $(,)?) => {
        $(
            impl WorkspaceBatch for $request {
                fn workspace_id(&self) -> &str {
                    &self.workspace_id
                }
                fn len(&self) -> usize {
                    self.$entries.len()
                }
                fn append(&mut self, other: Self) {
                    self.$entries.extend(other.$entries);
                }
            }
        )*
    };
}

workspace_batch!(
    segmentation::v1::ApplyEventsRequest => events,
    segmentation::v1::ApplyIdentitiesRequest => identities,
    trigger::v1::HandleEventsRequest => events,
    trigger::v1::HandleSegmentTransitionsRequest => transitions,
    delivery::v1::DeliverRequest => deliveries,
    analytics::v1::RecordInteractionsRequest => interactions,
    analytics::v1::RecordEventsRequest => events,
);
