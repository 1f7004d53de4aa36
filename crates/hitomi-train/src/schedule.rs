//! Learning-rate schedules evaluated per step.

use crate::config::ScheduleConfig;

/// Learning rate at `step` (0-based) of `total_steps`, with `steps_per_epoch` to convert epochs.
pub fn lr_at(cfg: &ScheduleConfig, base_lr: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
    let spe = steps_per_epoch.max(1) as f64;
    let s = step as f64;
    let warm = |warmup_epochs: f64| -> Option<f64> {
        let w = warmup_epochs * spe;
        (s < w).then(|| base_lr * (s + 1.0) / w)
    };
    match *cfg {
        ScheduleConfig::Constant => base_lr,
        ScheduleConfig::Cosine { warmup_epochs, final_frac } => warm(warmup_epochs).unwrap_or_else(|| {
            let w = warmup_epochs * spe;
            let span = (total_steps as f64 - w).max(1.0);
            let progress = ((s - w) / span).clamp(0.0, 1.0);
            let lo = base_lr * final_frac;
            lo + 0.5 * (base_lr - lo) * (1.0 + (std::f64::consts::PI * progress).cos())
        }),
        ScheduleConfig::Step { warmup_epochs, every_epochs, gamma } => warm(warmup_epochs)
            .unwrap_or_else(|| base_lr * gamma.powi((s / spe / every_epochs.max(1) as f64).floor() as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_final_fraction() {
        let c = ScheduleConfig::Cosine { warmup_epochs: 1.0, final_frac: 0.1 };
        assert!((lr_at(&c, 1.0, 0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(&c, 1.0, 9, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&c, 1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&c, 1.0, 100, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(&c, 1.0, 55, 10, 100) - 0.55).abs() < 1e-12);
    }

    #[test]
    fn step_decay() {
        let c = ScheduleConfig::Step { warmup_epochs: 0.0, every_epochs: 2, gamma: 0.1 };
        assert!((lr_at(&c, 1.0, 19, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&c, 1.0, 20, 10, 100) - 0.1).abs() < 1e-12);
    }
}
