//! The protobuf codec every generated client and server of `infant.v1` uses.
//!
//! tonic's default codec gives each stream an 8 KiB encode and an 8 KiB decode
//! buffer up front. The daemon holds one long-lived `Attach` stream per worker,
//! whose messages (heartbeats, `Ready`, `Stop`) are a few dozen bytes, so those
//! buffers were most of its memory per worker. This codec starts them at 512
//! bytes; they still grow on demand for a large message.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial buffer size per stream and direction.
const BUFFER: usize = 512;
/// tonic's default: how much an encoder batches before yielding to the transport.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with small initial buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallCodec<T, U> {
    fn default() -> Self {
        SmallCodec(PhantomData)
    }
}

impl<T, U> Codec for SmallCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }
}
