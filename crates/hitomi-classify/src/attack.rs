//! Adversarial examples (Goodfellow et al. 2015; Madry et al. 2018): FGSM and PGD in the
//! L-infinity ball around inputs in [0, 1], computed from the gradient of the loss with respect to
//! the input; robust accuracy per eps, a robustness curve and an example panel.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var, D};
use clap::{Args, ValueEnum};
use hitomi_core::checkpoint::write_atomic;
use hitomi_core::image_io::tensor_to_image;
use hitomi_data::{classification_batch, ClassificationData, OpenOptions};
use hitomi_nn::losses::{cross_entropy, softmax, CrossEntropyOptions};
use hitomi_train::draw::label;
use hitomi_train::plot;
use image::{imageops::FilterType, Rgb, RgbImage};
use serde::Serialize;

use crate::eval::load_classifier;
use crate::model::Classifier;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Fast gradient sign method: one step of size eps.
    Fgsm,
    /// Projected gradient descent: `steps` signed steps of `step_size`, projected back each time.
    Pgd,
}

/// `attack --weights W --data PATH [--split S] --method fgsm|pgd --eps 0.05,0.1,... [--steps N --step-size F]`
#[derive(Args, Debug, Clone)]
pub struct AttackArgs {
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "test")]
    pub split: String,
    #[arg(long, value_enum, default_value = "fgsm")]
    pub method: Method,
    /// Radii of the L-infinity ball (inputs are in [0, 1]).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2,0.25,0.3")]
    pub eps: Vec<f64>,
    /// PGD steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// PGD step size (default 2.5 * eps / steps, as Madry et al.).
    #[arg(long)]
    pub step_size: Option<f64>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Folder for robustness.png and panel.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Attack only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// d loss / d xs for cross-entropy against `ys`. xs: (B, C, H, W) -> same shape.
pub fn input_gradient(model: &Classifier, xs: &Tensor, ys: &Tensor, train: bool) -> Result<Tensor> {
    let x = Var::from_tensor(xs)?;
    let loss = cross_entropy(&model.forward(x.as_tensor(), train)?, ys, &CrossEntropyOptions::default())?;
    let grads = loss.backward()?;
    Ok(grads.get(x.as_tensor()).context("no gradient reached the input")?.detach())
}

/// Clips `adv` to the L-infinity ball of radius `eps` around `xs` and to [0, 1].
pub fn project(adv: &Tensor, xs: &Tensor, eps: f64) -> Result<Tensor> {
    let lo = (xs - eps)?.clamp(0f32, 1f32)?;
    let hi = (xs + eps)?.clamp(0f32, 1f32)?;
    Ok(adv.maximum(&lo)?.minimum(&hi)?)
}

/// One FGSM step: xs + eps * sign(grad), projected. `train` selects BN batch statistics (used when
/// crafting examples during adversarial training).
pub fn fgsm(model: &Classifier, xs: &Tensor, ys: &Tensor, eps: f64, train: bool) -> Result<Tensor> {
    let g = input_gradient(model, xs, ys, train)?;
    project(&(xs + (g.sign()? * eps)?)?, xs, eps)
}

/// PGD from the clean input (no random start, so results are deterministic).
pub fn pgd(model: &Classifier, xs: &Tensor, ys: &Tensor, eps: f64, steps: usize, step: f64) -> Result<Tensor> {
    let mut adv = xs.clone();
    for _ in 0..steps {
        let g = input_gradient(model, &adv, ys, false)?;
        adv = project(&(adv + (g.sign()? * step)?)?, xs, eps)?;
    }
    Ok(adv)
}

/// Results of one attack run (the `--json` document).
#[derive(Clone, Debug, Serialize)]
pub struct AttackReport {
    pub task: &'static str,
    pub method: Method,
    pub n: usize,
    pub clean: f64,
    pub eps: Vec<f64>,
    pub accuracy: Vec<f64>,
    /// Mean top-1 probability of the wrong predictions under attack, per eps (null if none).
    pub wrong_confidence: Vec<Option<f64>>,
    /// Largest L-infinity distance between an adversarial and its clean image, per eps.
    pub max_linf: Vec<f64>,
}

fn predictions(model: &Classifier, xs: &Tensor) -> Result<(Vec<u32>, Vec<f32>)> {
    let p = softmax(&model.forward(xs, false)?, 1)?;
    Ok((p.argmax(D::Minus1)?.to_vec1()?, p.max(D::Minus1)?.to_vec1()?))
}

pub fn run(a: &AttackArgs) -> Result<AttackReport> {
    let device = Device::Cpu;
    if a.eps.is_empty() || a.eps.iter().any(|e| !(0.0..=1.0).contains(e)) {
        bail!("--eps {:?}: expected comma-separated radii in [0, 1]", a.eps);
    }
    let m = load_classifier(&a.weights, &device)?;
    let opts = OpenOptions { channels: m.cfg.channels, size: Some((m.cfg.image_size[0], m.cfg.image_size[1])) };
    let data = ClassificationData::open(&a.data, &a.split, &opts)?;
    let n = a.limit.unwrap_or(data.len()).min(data.len());
    let idx: Vec<usize> = (0..n).collect();
    let mut clean_right = 0usize;
    let mut right = vec![0usize; a.eps.len()];
    let mut wrong_conf = vec![(0f64, 0usize); a.eps.len()];
    let mut max_linf = vec![0f64; a.eps.len()];
    let mut panel_done = false;
    for chunk in idx.chunks(100) {
        let (xs, ys) = classification_batch(&data, chunk, 0, 0, None, &device)?;
        let labels: Vec<u32> = ys.to_vec1()?;
        let (clean_pred, clean_conf) = predictions(&m.model, &xs)?;
        clean_right += clean_pred.iter().zip(&labels).filter(|(p, y)| p == y).count();
        for (k, &eps) in a.eps.iter().enumerate() {
            let adv = match a.method {
                Method::Fgsm => fgsm(&m.model, &xs, &ys, eps, false)?,
                Method::Pgd => {
                    pgd(&m.model, &xs, &ys, eps, a.steps, a.step_size.unwrap_or(2.5 * eps / a.steps.max(1) as f64))?
                }
            };
            let linf = (&adv - &xs)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
            max_linf[k] = max_linf[k].max(linf);
            let (pred, conf) = predictions(&m.model, &adv)?;
            for ((p, c), y) in pred.iter().zip(&conf).zip(&labels) {
                if p == y {
                    right[k] += 1;
                } else {
                    wrong_conf[k].0 += *c as f64;
                    wrong_conf[k].1 += 1;
                }
            }
            // The panel shows the first image that the attack at the panel's eps turns wrong.
            if let (false, Some(dir)) = (panel_done, &a.out) {
                if (eps - panel_eps(&a.eps)).abs() < 1e-12 {
                    if let Some(i) = (0..labels.len()).find(|&i| clean_pred[i] == labels[i] && pred[i] != labels[i]) {
                        let c = |t: u32| m.classes[t as usize].clone();
                        std::fs::create_dir_all(dir)?;
                        panel(
                            &dir.join("panel.png"),
                            &xs.get(i)?,
                            &adv.get(i)?,
                            eps,
                            (&c(clean_pred[i]), clean_conf[i]),
                            (&c(pred[i]), conf[i]),
                        )?;
                        panel_done = true;
                    }
                }
            }
        }
    }
    let nf = n.max(1) as f64;
    let report = AttackReport {
        task: "attack",
        method: a.method,
        n,
        clean: clean_right as f64 / nf,
        eps: a.eps.clone(),
        accuracy: right.iter().map(|&r| r as f64 / nf).collect(),
        wrong_confidence: wrong_conf.iter().map(|&(s, k)| (k > 0).then(|| s / k as f64)).collect(),
        max_linf,
    };
    println!(
        "{} {:?} on {} images of {} ({} split): clean accuracy {:.2}%",
        m.path.display(),
        a.method,
        n,
        a.data.display(),
        a.split,
        100.0 * report.clean
    );
    println!("{:>6} {:>10} {:>18} {:>10}", "eps", "accuracy", "wrong confidence", "max |d|");
    for k in 0..a.eps.len() {
        let wc = report.wrong_confidence[k].map(|v| format!("{:.1}%", 100.0 * v)).unwrap_or_else(|| "-".into());
        println!("{:>6.3} {:>9.2}% {:>18} {:>10.4}", a.eps[k], 100.0 * report.accuracy[k], wc, report.max_linf[k]);
    }
    if let Some(j) = &a.json {
        write_atomic(j, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)?;
        let mut xs = vec![0.0];
        xs.extend(&a.eps);
        let mut ys = vec![report.clean];
        ys.extend(&report.accuracy);
        let title = format!("{:?} robustness", a.method);
        plot::xy(&dir.join("robustness.png"), &title, "eps (L-infinity)", "accuracy", &[("accuracy", xs, ys)])?;
    }
    Ok(report)
}

/// The eps shown in the panel: 0.25 (the lecture's figure) when asked for, else the largest.
fn panel_eps(eps: &[f64]) -> f64 {
    eps.iter().copied().find(|&e| (e - 0.25).abs() < 1e-12).unwrap_or_else(|| eps.iter().copied().fold(0.0, f64::max))
}

/// original | perturbation (magnified to fill [0, 1]) | adversarial, with class and confidence.
fn panel(path: &Path, x: &Tensor, adv: &Tensor, eps: f64, clean: (&str, f32), attacked: (&str, f32)) -> Result<()> {
    let delta = ((adv - x)? / (2.0 * eps))?.affine(1.0, 0.5)?;
    let tiles = [x.clone(), delta, adv.clone()];
    let side = 168u32;
    let mut canvas = RgbImage::from_pixel(3 * side + 40, side + 60, Rgb([255, 255, 255]));
    for (i, t) in tiles.iter().enumerate() {
        let img = tensor_to_image(t)?.resize_exact(side, side, FilterType::Nearest).to_rgb8();
        image::imageops::overlay(&mut canvas, &img, (10 + i as u32 * (side + 10)) as i64, 10);
    }
    let (fg, bg) = (Rgb([0, 0, 0]), Rgb([255, 255, 255]));
    label(&mut canvas, 10, side as i32 + 14, 16.0, &format!("\"{}\" {:.1}%", clean.0, 100.0 * clean.1), fg, bg);
    label(&mut canvas, 20 + side as i32, side as i32 + 14, 16.0, &format!("+ {eps} x sign(grad)"), fg, bg);
    label(
        &mut canvas,
        30 + 2 * side as i32,
        side as i32 + 14,
        16.0,
        &format!("\"{}\" {:.1}%", attacked.0, 100.0 * attacked.1),
        Rgb([200, 0, 0]),
        bg,
    );
    canvas.save(path).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_stays_in_the_ball_and_in_range() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::rand(0f32, 1.0, (4, 1, 5, 5), &dev)?;
        let wild = (Tensor::randn(0f32, 1.0, (4, 1, 5, 5), &dev)? * 3.0)?;
        for eps in [0.0, 0.05, 0.3] {
            let p = project(&wild, &x, eps)?;
            let linf = (&p - &x)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(linf as f64 <= eps + 1e-6, "eps {eps}: |d| = {linf}");
            let (lo, hi) = (p.flatten_all()?.min(0)?.to_scalar::<f32>()?, p.flatten_all()?.max(0)?.to_scalar::<f32>()?);
            assert!(lo >= 0.0 && hi <= 1.0);
        }
        Ok(())
    }
}
