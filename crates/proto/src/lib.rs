//! Herald's v1 contracts: messages, clients and servers generated from `proto/`, with
//! modules that mirror the protobuf packages, and a file descriptor set per package for
//! gRPC server reflection.

#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

/// `herald.*` packages.
pub mod herald {
    /// `herald.common.v1`: types shared by every service.
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("herald.common.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.common.v1.bin"));
        }
    }
    /// `herald.ingest.v1`: events and traits in.
    pub mod ingest {
        pub mod v1 {
            tonic::include_proto!("herald.ingest.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.ingest.v1.bin"));
        }
    }
    /// `herald.segmentation.v1`: rule-based user segments.
    pub mod segmentation {
        pub mod v1 {
            tonic::include_proto!("herald.segmentation.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.segmentation.v1.bin"));
        }
    }
    /// `herald.trigger.v1`: campaigns and the decisions to send them.
    pub mod trigger {
        pub mod v1 {
            tonic::include_proto!("herald.trigger.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.trigger.v1.bin"));
        }
    }
    /// `herald.delivery.v1`: live streams, the inbox, preferences and channels.
    pub mod delivery {
        pub mod v1 {
            tonic::include_proto!("herald.delivery.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.delivery.v1.bin"));
        }
    }
    /// `herald.analytics.v1`: interactions, conversions and campaign statistics.
    pub mod analytics {
        pub mod v1 {
            tonic::include_proto!("herald.analytics.v1");
            /// Encoded descriptor set of this package and its imports.
            pub const FILE_DESCRIPTOR_SET: &[u8] =
                include_bytes!(concat!(env!("OUT_DIR"), "/herald.analytics.v1.bin"));
        }
    }
}

pub use herald::{analytics, common, delivery, ingest, segmentation, trigger};
