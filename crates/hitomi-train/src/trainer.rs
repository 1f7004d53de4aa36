//! The generic training loop: seeded batches, forward/backward, clipping, optimizer, EMA, progress,
//! per-epoch validation and reports, atomic checkpoints and exact resume.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use hitomi_core::checkpoint::write_weights;
use hitomi_core::SeededRng;
use hitomi_data::loader::Loader;
use indicatif::{ProgressBar, ProgressStyle};

use crate::clip::clip_grad_norm;
use crate::config::TrainConfig;
use crate::ema::Ema;
use crate::optim::Optimizer;
use crate::plot;
use crate::run_dir::{EpochRow, RunDir, TrainState};
use crate::schedule::lr_at;
use crate::task::{Metrics, Task};

/// Options of one `fit` call that are not hyper-parameters.
#[derive(Clone, Debug, Default)]
pub struct FitOptions {
    pub resume: bool,
    /// Stop after this many steps in total (smoke runs); checkpoints are still written.
    pub max_steps: Option<usize>,
    /// Hide the progress bar (it is hidden anyway when stderr is not a terminal).
    pub quiet: bool,
}

/// What a finished `fit` reports.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub steps: usize,
    pub epochs: usize,
    pub best: Option<f64>,
    pub last_metrics: Metrics,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Trains `task` into the run folder `out`.
pub fn fit<T: Task>(task: &mut T, cfg: &TrainConfig, out: &Path, opts: &FitOptions) -> Result<FitSummary> {
    let run = RunDir::create(out)?;
    let store = task.store().clone();
    let mut optimizer = Optimizer::new(&store, &cfg.optimizer, cfg.weight_decay);
    let mut ema = match cfg.ema_decay {
        Some(d) => Some(Ema::new(&store, d)?),
        None => None,
    };
    let loader = Loader::new(task.train_len(), cfg.batch, true, true, cfg.seed);
    let spe = loader.batches_per_epoch();
    if spe == 0 {
        bail!("{} training samples are fewer than one batch of {}; lower --batch", task.train_len(), cfg.batch);
    }
    let total = spe * cfg.epochs;
    let meta = task.metadata();
    let (metric_name, higher_better) = task.primary_metric();

    let mut state = TrainState {
        step: 0,
        epoch: 0,
        ema_updates: 0,
        rng: SeededRng::new(cfg.seed ^ 0x5EED).state(),
        best: None,
        best_epoch: None,
        history: Vec::new(),
        optimizer_state: "last.safetensors: optim.* tensors".into(),
        epoch_loss_sum: 0.0,
        epoch_steps: 0,
        epoch_parts: Default::default(),
    };
    if opts.resume {
        let (w, s) = run.load_last()?;
        store.load_checked(&w.tensors, &w.path.display().to_string(), &|n| {
            n.starts_with("optim.") || n.starts_with("ema.")
        })?;
        optimizer.load_state(&w.tensors, s.step as u64)?;
        if let Some(e) = ema.as_mut() {
            e.load_state(&w.tensors, s.ema_updates)?;
        }
        eprintln!("resuming {} at step {} (epoch {})", w.path.display(), s.step, s.epoch + 1);
        state = s;
    }
    run.reset_step_log(state.step)?;
    let mut rng = SeededRng::from_state(&state.rng)?;
    let batch_fn = task.batch_fn();

    let started = Instant::now();
    let mut images_done = 0usize;
    let stop_at = opts.max_steps.unwrap_or(usize::MAX).min(total);
    let save_last = |state: &TrainState, optimizer: &Optimizer, ema: &Option<Ema>| -> Result<()> {
        let mut tensors = store.tensors()?;
        tensors.extend(optimizer.state_tensors());
        if let Some(e) = ema {
            tensors.extend(e.state_tensors());
        }
        run.save_last(tensors, meta.clone(), state)
    };

    while state.step < stop_at {
        let epoch = state.step / spe;
        let start_batch = state.step % spe;
        let bar = if opts.quiet { ProgressBar::hidden() } else { ProgressBar::new(spe as u64) };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        bar.set_position(start_batch as u64);
        let epoch_start = Instant::now();
        let mut epoch_images = 0usize;
        let mut lr = cfg.lr;
        for item in loader.iter(epoch, start_batch, batch_fn.clone()) {
            let (_, batch) = item?;
            lr = lr_at(&cfg.schedule, cfg.lr, state.step, spe, total);
            let out = task.loss(&batch, &mut rng)?;
            let loss = out.total.to_scalar::<f32>()? as f64;
            if !loss.is_finite() {
                bail!(
                    "non-finite loss ({loss}) at epoch {} step {}: training stopped; the last good checkpoint \
                     ({}) was left untouched. Lower --lr or check the data.",
                    epoch + 1,
                    state.step + 1,
                    run.file("last.safetensors").display()
                );
            }
            let mut grads = out.total.backward()?;
            if let Some(max) = cfg.clip_grad_norm {
                let vars: Vec<_> = store.trainable().into_iter().map(|(_, v, _)| v).collect();
                clip_grad_norm(&mut grads, &vars, max)?;
            }
            optimizer.step(&grads, lr)?;
            if let Some(e) = ema.as_mut() {
                e.update(&store)?;
                state.ema_updates = e.updates;
            }
            state.step += 1;
            state.rng = rng.state();
            run.log_step(state.step, epoch + 1, lr, loss)?;
            state.epoch_loss_sum += loss;
            state.epoch_steps += 1;
            for (k, v) in &out.parts {
                *state.epoch_parts.entry(k.clone()).or_default() += v;
            }
            epoch_images += out.images;
            images_done += out.images;
            let ips = epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} lr {lr:.2e} {ips:.0} img/s",
                state.epoch_loss_sum / state.epoch_steps as f64
            ));
            bar.inc(1);
            let epoch_done = state.step.is_multiple_of(spe);
            if epoch_done {
                state.epoch = epoch + 1;
            }
            if !epoch_done && cfg.save_every_steps.is_some_and(|n| n > 0 && state.step.is_multiple_of(n)) {
                save_last(&state, &optimizer, &ema)?;
            }
            if state.step >= stop_at {
                break;
            }
        }
        bar.finish_and_clear();
        if !state.step.is_multiple_of(spe) {
            // Stopped mid-epoch by --max-steps: keep the place, skip validation.
            save_last(&state, &optimizer, &ema)?;
            break;
        }

        // Validate with the EMA weights when they are kept.
        let metrics = with_weights(task, ema.as_ref(), |t| t.validate())?;
        let row = EpochRow {
            epoch: epoch + 1,
            step: state.step,
            lr,
            train_loss: state.epoch_loss_sum / state.epoch_steps.max(1) as f64,
            parts: std::mem::take(&mut state.epoch_parts)
                .into_iter()
                .map(|(k, v)| (k, v / state.epoch_steps.max(1) as f64))
                .collect(),
            metrics: metrics.clone(),
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        let summary: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        eprintln!(
            "epoch {}/{}: loss {:.4}, {} ({:.0} img/s)",
            epoch + 1,
            cfg.epochs,
            row.train_loss,
            summary.join(", "),
            epoch_images as f64 / row.seconds.max(1e-9)
        );
        state.history.push(row);
        state.epoch_loss_sum = 0.0;
        state.epoch_steps = 0;
        let value = metrics.get(metric_name).copied();
        let improved = match (value, state.best) {
            (Some(v), Some(b)) => (higher_better && v > b) || (!higher_better && v < b),
            (Some(_), None) => true,
            _ => false,
        };
        if improved {
            state.best = value;
            state.best_epoch = Some(epoch + 1);
            let tensors = match &ema {
                Some(e) => e.tensors().to_vec(),
                None => store.tensors()?,
            };
            let mut m = meta.clone();
            m.insert("hitomi.metrics".into(), serde_json::to_string(&metrics)?);
            m.insert("hitomi.epoch".into(), (epoch + 1).to_string());
            write_weights(&run.file("best.safetensors"), &tensors, m)?;
        }
        save_last(&state, &optimizer, &ema)?;
        run.write_metrics_csv(&state.history)?;
        plot::curves(&run.file("curves.png"), &state.history)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(FitSummary {
        steps: state.step,
        epochs: state.epoch,
        best: state.best,
        last_metrics: state.history.last().map(|r| r.metrics.clone()).unwrap_or_default(),
        seconds,
        images_per_second: images_done as f64 / seconds.max(1e-9),
    })
}

/// Runs `f` with the EMA weights swapped into the model, then restores the trained ones.
fn with_weights<T: Task, R>(task: &mut T, ema: Option<&Ema>, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R> {
    let Some(ema) = ema else { return f(task) };
    let store = task.store().clone();
    let saved: HashMap<String, candle_core::Tensor> = store.tensors()?.into_iter().collect();
    let shadow: HashMap<String, candle_core::Tensor> = ema.tensors().iter().cloned().collect();
    store.load_checked(&shadow, "EMA weights", &|_| false)?;
    let r = f(task);
    store.load_checked(&saved, "trained weights", &|_| false)?;
    r
}
