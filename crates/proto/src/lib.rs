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
    segmentation::v1::ApplyInteractionsRequest => interactions,
    trigger::v1::HandleEventsRequest => events,
    trigger::v1::HandleSegmentTransitionsRequest => transitions,
    delivery::v1::DeliverRequest => deliveries,
    analytics::v1::RecordInteractionsRequest => interactions,
    analytics::v1::RecordEventsRequest => events,
);

/// The codec every generated client and server uses: prost's, with a small first buffer
/// for encoding.
#[cfg(feature = "grpc")]
pub mod codec {
    use std::marker::PhantomData;

    use tonic::codec::{BufferSettings, Codec};
    use tonic_prost::{ProstDecoder, ProstEncoder};

    /// Bytes first allocated to encode a call's messages (tonic's default is 8 KiB). A
    /// response stream keeps its buffer while it is open, so an idle Subscribe stream would
    /// hold 8 KiB for nothing; a larger message grows the buffer as it is encoded.
    pub const ENCODE_BUFFER: usize = 512;
    /// Encoded bytes after which a stream hands its buffer to HTTP/2 (tonic's default).
    pub const YIELD_THRESHOLD: usize = 32 * 1024;

    /// prost encoding with [`ENCODE_BUFFER`]; decoding as tonic's default.
    #[derive(Debug, Clone)]
    pub struct ProstCodec<T, U> {
        _pd: PhantomData<(T, U)>,
    }

    impl<T, U> Default for ProstCodec<T, U> {
        fn default() -> Self {
            ProstCodec { _pd: PhantomData }
        }
    }

    impl<T, U> Codec for ProstCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = ProstDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstEncoder::new(BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD))
        }

        fn decoder(&mut self) -> Self::Decoder {
            ProstDecoder::default()
        }
    }
}
