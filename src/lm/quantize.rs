//! 8-bit weights for a frozen base: symmetric per-output-channel int8
//! (absmax, as LLM.int8()'s vector-wise quantization without its fp16
//! outlier path; Dettmers et al. 2022), dequantized on the fly.
//!
//! ```text
//! sᵢ = max_j |Wᵢⱼ| / 127                 one f32 scale per output row i
//! qᵢⱼ = round(Wᵢⱼ / sᵢ) ∈ [−127, 127]    stored as a byte (q + 128)
//! Ŵᵢⱼ = sᵢ · qᵢⱼ                         |Ŵᵢⱼ − Wᵢⱼ| ≤ sᵢ / 2
//! ```
//!
//! Why not candle's own quantized matmul (`QMatMul`, the GGUF types)? It has
//! no backward pass: a gradient reaching it stops silently, so adapters
//! before it in the network would never learn. Dequantizing to a dense
//! matrix inside the forward pass keeps every gradient with respect to the
//! activations; the price is that autograd keeps each dequantized matrix
//! until the backward pass, so *training* through an int8 base peaks at
//! about the dense model's memory (QLoRA's kernels recompute instead). At
//! rest and for inference the weights take 1 byte + 4/in bytes each.

use candle_core::{DType, Device, Result, Tensor};

/// A matrix (out, in) stored as int8 with one scale per row.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    /// q + 128 as bytes, (out, in).
    codes: Tensor,
    /// sᵢ, (out, 1), f32.
    scales: Tensor,
    /// The precision the dequantized matrix is computed in.
    dtype: DType,
}

impl Int8Matrix {
    /// Quantize `w` (out, in), any float dtype.
    pub fn quantize(w: &Tensor) -> Result<Self> {
        let (out, inp) = w.dims2()?;
        let rows: Vec<Vec<f32>> = w.to_dtype(DType::F32)?.to_vec2()?;
        let mut codes = Vec::with_capacity(out * inp);
        let mut scales = Vec::with_capacity(out);
        for row in &rows {
            let absmax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            let s = if absmax > 0.0 { absmax / 127.0 } else { 1.0 };
            scales.push(s);
            codes.extend(
                row.iter()
                    .map(|x| ((x / s).round().clamp(-127.0, 127.0) + 128.0) as u8),
            );
        }
        let device = w.device();
        Ok(Self {
            codes: Tensor::from_vec(codes, (out, inp), device)?,
            scales: Tensor::from_vec(scales, (out, 1), device)?,
            dtype: w.dtype(),
        })
    }

    /// Ŵ = s · (codes − 128), (out, in), in the original dtype.
    pub fn dequantize(&self) -> Result<Tensor> {
        let q = (self.codes.to_dtype(DType::F32)? - 128.0)?;
        q.broadcast_mul(&self.scales)?.to_dtype(self.dtype)
    }

    pub fn dims(&self) -> (usize, usize) {
        let d = self.codes.dims();
        (d[0], d[1])
    }

    /// Bytes held: one per weight plus four per row.
    pub fn bytes(&self) -> usize {
        self.codes.elem_count() + 4 * self.scales.elem_count()
    }

    pub fn device(&self) -> &Device {
        self.codes.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each weight comes back within half a step sᵢ/2 of its row; the largest
    /// weight of a row exactly; a zero row stays zero.
    #[test]
    fn round_trip_error_is_at_most_half_a_step_per_row() {
        let w = Tensor::new(
            &[
                [0.5f32, -1.27, 0.003, 0.9],
                [0.0, 0.0, 0.0, 0.0],
                [100.0, -3.0, 2.5, -0.01],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let m = Int8Matrix::quantize(&w).unwrap();
        let back: Vec<Vec<f32>> = m.dequantize().unwrap().to_vec2().unwrap();
        let orig: Vec<Vec<f32>> = w.to_vec2().unwrap();
        for (r, (b, o)) in back.iter().zip(&orig).enumerate() {
            let step = o.iter().fold(0f32, |a, x| a.max(x.abs())) / 127.0;
            for (x, y) in b.iter().zip(o) {
                assert!((x - y).abs() <= step / 2.0 + 1e-6, "row {r}: {x} vs {y}");
            }
        }
        assert!((back[0][1] + 1.27).abs() < 1e-6);
        assert_eq!(back[1], vec![0.0; 4]);
        assert_eq!(m.bytes(), 12 + 12);
    }
}
