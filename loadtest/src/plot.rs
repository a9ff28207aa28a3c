//! PNG charts of a run: latency percentiles per second (from the windows) and the
//! percentile spectrum of the whole run (latency against a log "nines" axis).
//!
//! Drawing is pure Rust: plotters' bitmap backend with the DejaVu Sans font registered
//! from bytes. It must never need a system library (no fontconfig, no freetype).

use std::path::Path;
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::stats::Window;

/// Width and height of the PNG in pixels.
const SIZE: (u32, u32) = (1200, 900);
/// Nines between spectrum points (0.05: twenty points per decade).
const NINES_STEP: f64 = 0.05;

/// One point of the spectrum: nines (`-log10(1 - q)`) and latency in ms.
pub type SpectrumPoint = (f64, f64);

/// The percentile spectrum of a µs histogram, bounded by its count's nines.
pub fn spectrum(histogram: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let nines_max = (histogram.len() as f64).log10().clamp(1.0, 7.0);
    let steps = (nines_max / NINES_STEP).ceil() as u32;
    (0..=steps)
        .map(|step| {
            let nines = f64::from(step) * NINES_STEP;
            let quantile = 1.0 - 10f64.powf(-nines);
            (nines, histogram.value_at_quantile(quantile) as f64 / 1000.0)
        })
        .collect()
}

fn register_fonts() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    ok.then_some(()).ok_or_else(|| "the embedded font is invalid".to_owned())
}

/// Writes both charts to `path`.
pub fn write_png(
    path: &Path,
    windows: &[Window],
    spectrum: &[SpectrumPoint],
) -> Result<(), String> {
    register_fonts()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);
    over_time(&top, windows).map_err(|e| e.to_string())?;
    percentile_spectrum(&bottom, spectrum).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// A per-second series: its label, the window field and the colour.
type Line = (&'static str, fn(&Window) -> f64, RGBColor);
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn over_time(area: &Area<'_>, windows: &[Window]) -> DrawResult {
    let seconds = windows.len().max(1) as f64;
    let top = windows.iter().map(|w| w.max_ms).fold(0.1, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency per second (ms)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..seconds, 0f64..top)?;
    chart.configure_mesh().x_desc("second").y_desc("ms").draw()?;
    let series: [Line; 4] = [
        ("max", |w| w.max_ms, RED),
        ("p99.9", |w| w.p999_ms, MAGENTA),
        ("p99", |w| w.p99_ms, GREEN),
        ("p50", |w| w.p50_ms, BLUE),
    ];
    for (label, value, color) in series {
        let points = windows.iter().map(move |w| (w.second as f64, value(w)));
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?.label(label).legend(
            move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)),
        );
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()
}

fn percentile_spectrum(area: &Area<'_>, spectrum: &[SpectrumPoint]) -> DrawResult {
    let nines = spectrum.last().map_or(1.0, |p| p.0).max(1.0);
    let top = spectrum.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile (ms)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..nines, 0f64..top)?;
    chart
        .configure_mesh()
        .x_labels(nines.ceil() as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .x_desc("percentile")
        .y_desc("ms")
        .draw()?;
    chart.draw_series(LineSeries::new(spectrum.iter().copied(), BLUE.stroke_width(2)))?;
    Ok(())
}

/// `0` → "0%", `1` → "90%", `2` → "99%", `3` → "99.9%".
pub fn percentile_label(nines: f64) -> String {
    let percent = (1.0 - 10f64.powf(-nines)) * 100.0;
    let decimals = (nines - 2.0).ceil().max(0.0) as usize;
    format!("{percent:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_count_nines() {
        let labels: Vec<String> = [0.0, 1.0, 2.0, 3.0, 4.0].map(percentile_label).to_vec();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn spectrum_is_bounded_and_rising() {
        let mut h = crate::stats::histogram();
        (1..=100_000u64).for_each(|v| h.saturating_record(v));
        let points = spectrum(&h);
        assert_eq!(points.len(), 101);
        assert!(points.windows(2).all(|p| p[0].1 <= p[1].1));
    }
}
