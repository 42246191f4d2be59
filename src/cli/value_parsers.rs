//! Clap value parsers for numeric flags that would otherwise accept nonsense
//! (NaN, ±inf, 0 where at least one is needed, a share outside [0, 1]). Clap
//! puts the flag's name before the message: `invalid value 'NaN' for
//! '--length-bias <LENGTH_BIAS>': must be a finite number`.

/// A finite number (not NaN, not ±inf).
pub fn finite(s: &str) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("must be a finite number, got {x}"))
    }
}

/// A share (probability) from 0 to 1 inclusive.
pub fn share(s: &str) -> Result<f64, String> {
    let x = finite(s)?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("must be a share from 0 to 1, got {x}"))
    }
}

/// A count of at least 1 (0 would leave nothing to compute with).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("{e}"))?;
    if n >= 1 {
        Ok(n)
    } else {
        Err("must be at least 1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nonsense() {
        assert_eq!(finite("1.5"), Ok(1.5));
        for bad in ["NaN", "inf", "-inf", "x"] {
            assert!(finite(bad).is_err(), "{bad}");
        }
        assert_eq!(share("0"), Ok(0.0));
        assert_eq!(share("1"), Ok(1.0));
        assert!(share("1.01").is_err() && share("-0.1").is_err() && share("NaN").is_err());
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err() && at_least_one("-1").is_err());
    }
}
