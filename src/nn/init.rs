//! Weight initialisation from the project's seeded RNG (so the same seed gives the
//! same network on every machine; candle's own CPU RNG cannot be seeded).

use candle_core::{Device, Result, Tensor, Var};
use candle_nn::VarMap;
use gridworld::Rng;

/// A `rows × cols` matrix with orthonormal rows or columns, times `gain`
/// (Saxe, McClelland & Ganguli 2014, *Exact solutions to the nonlinear dynamics of
/// learning in deep linear networks*). Built by Gram–Schmidt on a Gaussian matrix,
/// with signs fixed so the result is uniformly distributed, as `torch.nn.init.orthogonal_`.
pub fn orthogonal(
    rows: usize,
    cols: usize,
    gain: f64,
    rng: &mut Rng,
    device: &Device,
) -> Result<Tensor> {
    // Orthonormalise the longer side's vectors in a (k × d) matrix with k ≤ d.
    let (k, d, transpose) = if rows <= cols {
        (rows, cols, false)
    } else {
        (cols, rows, true)
    };
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    while q.len() < k {
        let mut v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            // Two passes of modified Gram–Schmidt for numerical orthogonality.
            for u in &q {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm < 1e-8 {
            continue; // astronomically unlikely: draw again
        }
        v.iter_mut().for_each(|a| *a /= norm);
        q.push(v);
    }
    let mut data = vec![0f32; rows * cols];
    for (i, row) in q.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let (r, c) = if transpose { (j, i) } else { (i, j) };
            data[r * cols + c] = (x * gain) as f32;
        }
    }
    Tensor::from_vec(data, (rows, cols), device)
}

/// Put an orthogonally initialised linear layer (`prefix.weight` `[out, in]`,
/// `prefix.bias` zeros) into `varmap`, so that `candle_nn::linear(in, out, vb.pp(prefix))`
/// picks these variables up.
pub fn insert_linear(
    varmap: &VarMap,
    prefix: &str,
    in_dim: usize,
    out_dim: usize,
    gain: f64,
    rng: &mut Rng,
    device: &Device,
) -> Result<()> {
    let w = orthogonal(out_dim, in_dim, gain, rng, device)?;
    let b = Tensor::zeros(out_dim, candle_core::DType::F32, device)?;
    let mut data = varmap.data().lock().expect("varmap lock");
    data.insert(format!("{prefix}.weight"), Var::from_tensor(&w)?);
    data.insert(format!("{prefix}.bias"), Var::from_tensor(&b)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_is_orthogonal() {
        for (r, c) in [(4, 4), (3, 7), (7, 3)] {
            let w = orthogonal(r, c, 2.0, &mut Rng::new(1), &Device::Cpu).unwrap();
            // The smaller Gram matrix is gain² · I.
            let g = if r <= c {
                w.matmul(&w.t().unwrap())
            } else {
                w.t().unwrap().matmul(&w)
            }
            .unwrap();
            let g: Vec<Vec<f32>> = g.to_vec2().unwrap();
            for (i, row) in g.iter().enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    let want = if i == j { 4.0 } else { 0.0 };
                    assert!((x - want).abs() < 1e-4, "{r}x{c}: {x}");
                }
            }
        }
    }
}
