//! The gRPC codec of every Boltfleet service and client: prost's encoding with small initial
//! buffers. tonic's default codec gives each stream an 8 KiB decode and an 8 KiB encode buffer
//! up front; a controller holds one agent stream per host for days, and those two buffers
//! were a quarter of its memory per connected agent (`BENCHMARKS.md`). A buffer still grows to
//! the message it holds (limits stay those of `max_decoding_message_size`), so only the
//! memory of quiet streams changes.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Initial size of each stream's encode and decode buffer. Agents' reports, acks and job
/// messages are a few hundred bytes to a few KiB.
pub const BUFFER_BYTES: usize = 1024;

/// Bytes encoded before an encoding stream yields to the runtime (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// The codec named by `codec_path` in `build.rs`: [`tonic_prost::ProstCodec`] with
/// [`BUFFER_BYTES`] buffers.
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec { _pd: PhantomData }
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
