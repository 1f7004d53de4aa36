//! Plots as PNG with plotters: training curves and a confusion matrix.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::draw::register_plot_font;
use crate::run_dir::EpochRow;

fn save_rgb(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).context("plot buffer size")?;
    img.save(path).with_context(|| format!("{}: cannot write plot", path.display()))
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}

/// `curves.png`: training loss per epoch (left) and each validation metric (right).
pub fn curves(path: &Path, history: &[EpochRow]) -> Result<()> {
    register_plot_font();
    let (w, h) = (1000u32, 400u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (left, right) = root.split_horizontally(w / 2);
        let n = history.len().max(1) as f64;
        let losses: Vec<(f64, f64)> = history.iter().map(|r| (r.epoch as f64, r.train_loss)).collect();
        let lmax = losses.iter().map(|p| p.1).fold(0f64, f64::max).max(1e-6) * 1.05;
        let mut c = ChartBuilder::on(&left)
            .caption("training loss", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n + 1.0, 0f64..lmax)
            .map_err(err)?;
        c.configure_mesh().x_desc("epoch").draw().map_err(err)?;
        c.draw_series(LineSeries::new(losses.clone(), &BLUE)).map_err(err)?;
        c.draw_series(losses.iter().map(|p| Circle::new(*p, 3, BLUE.filled()))).map_err(err)?;

        let mut keys: Vec<&String> = history.iter().flat_map(|r| r.metrics.keys()).collect();
        keys.sort();
        keys.dedup();
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for r in history {
            for v in r.metrics.values() {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let mut c = ChartBuilder::on(&right)
            .caption("validation", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n + 1.0, (lo - pad)..(hi + pad))
            .map_err(err)?;
        c.configure_mesh().x_desc("epoch").draw().map_err(err)?;
        for (i, k) in keys.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> =
                history.iter().filter_map(|r| r.metrics.get(*k).map(|v| (r.epoch as f64, *v))).collect();
            c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(err)?;
            c.draw_series(LineSeries::new(pts, color))
                .map_err(err)?
                .label(k.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        }
        if !keys.is_empty() {
            c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    save_rgb(path, w, h, buf)
}

/// `confusion.png`: rows = true class, columns = predicted, cells shaded by row fraction.
pub fn confusion(path: &Path, matrix: &[Vec<u64>], classes: &[String]) -> Result<()> {
    register_plot_font();
    let k = matrix.len();
    let cell = (560 / k.max(1)).clamp(12, 60) as i32;
    let margin = 90;
    let side = margin + cell * k as i32 + 20;
    let (w, h) = (side as u32, side as u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let font = ("sans-serif", (cell as f64 * 0.35).clamp(9.0, 16.0)).into_font();
        root.draw(&Text::new("predicted", (margin + cell * k as i32 / 2 - 30, 8), ("sans-serif", 16))).map_err(err)?;
        root.draw(&Text::new("true", (8, margin + cell * k as i32 / 2), ("sans-serif", 16))).map_err(err)?;
        for (i, row) in matrix.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            let y0 = margin + cell * i as i32;
            root.draw(&Text::new(
                classes.get(i).cloned().unwrap_or_default(),
                (margin - 35, y0 + cell / 3),
                font.clone(),
            ))
            .map_err(err)?;
            for (j, &v) in row.iter().enumerate() {
                let x0 = margin + cell * j as i32;
                let frac = v as f64 / total as f64;
                let shade = (255.0 * (1.0 - frac)) as u8;
                let color = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], color.filled())).map_err(err)?;
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], BLACK.mix(0.2))).map_err(err)?;
                if v > 0 && cell >= 20 {
                    let fg = if frac > 0.5 { WHITE } else { BLACK };
                    root.draw(&Text::new(v.to_string(), (x0 + 3, y0 + cell / 3), font.clone().color(&fg)))
                        .map_err(err)?;
                }
            }
        }
        for (j, c) in classes.iter().enumerate().take(k) {
            root.draw(&Text::new(c.clone(), (margin + cell * j as i32 + cell / 3, margin - 25), font.clone()))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    save_rgb(path, w, h, buf)
}

/// A simple line plot of named series (x, y) with markers.
pub fn xy(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[(&str, Vec<f64>, Vec<f64>)]) -> Result<()> {
    register_plot_font();
    let (w, h) = (640u32, 420u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let all_x = series.iter().flat_map(|s| s.1.iter().copied());
        let xmax = all_x.fold(0f64, f64::max).max(1e-6) * 1.05;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..xmax, 0f64..1.02f64)
            .map_err(err)?;
        c.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(err)?;
        for (i, (name, xs, ys)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
            c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(err)?;
            c.draw_series(LineSeries::new(pts, color))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        }
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
        root.present().map_err(err)?;
    }
    save_rgb(path, w, h, buf)
}
