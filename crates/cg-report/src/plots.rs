//! The figures of a report, drawn with plotters into a PNG (RGB bitmap encoded by the `image` crate)
//! and an SVG from the same drawing code: accuracy vs savings with the front, gate heatmaps, and
//! training curves. Figures take plain data prepared by the report, never records. A figure with
//! nothing to show draws a message instead of an empty chart.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::font::{self, FAMILY};
use crate::{Error, Result};

/// A configuration on the accuracy-vs-savings plane.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub x_std: f64,
    pub y: f64,
    /// Half the length of the vertical error bar (the report draws the 95% t interval).
    pub y_err: f64,
    pub on_front: bool,
    /// Write the label beside the marker.
    pub show_label: bool,
}

/// Objective y against objective x, the front highlighted, baselines as horizontal lines.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterFigure {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub points: Vec<ScatterPoint>,
    /// (label, y value) of each baseline configuration.
    pub baselines: Vec<(String, f64)>,
    /// Matched-compute controls, one series per kind, each with its own marker.
    pub controls: Vec<ControlSeries>,
}

/// The points of one kind of matched-compute control (never on the front).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSeries {
    /// The legend entry: `static control`, `narrow control`.
    pub name: String,
    pub marker: Marker,
    pub points: Vec<ScatterPoint>,
}

/// A control's marker shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Triangle,
    Square,
}

/// Values per (row, column): configurations by blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapFigure {
    pub title: String,
    pub value_desc: String,
    pub column_labels: Vec<String>,
    pub row_labels: Vec<String>,
    /// `values[row][column]`; `None` where a configuration has no gate on that block.
    pub values: Vec<Vec<Option<f64>>>,
    /// Colour scale limits.
    pub range: (f64, f64),
}

/// One line per configuration in two panels: test accuracy and nominal savings per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvesFigure {
    pub title: String,
    /// (label, [(epoch, test accuracy, nominal savings)]).
    pub series: Vec<(String, Vec<(f64, f64, f64)>)>,
    /// Per series (same order), its validation accuracy per epoch, drawn dashed in the accuracy
    /// panel; empty for a series without a validation split.
    pub validation: Vec<Vec<(f64, f64)>>,
}

/// One step line: y against x (hypervolume against epochs spent).
#[derive(Debug, Clone, PartialEq)]
pub struct LineFigure {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub points: Vec<(f64, f64)>,
}

/// What a figure draws.
#[derive(Debug, Clone, PartialEq)]
pub enum FigureKind {
    Scatter(ScatterFigure),
    Heatmap(HeatmapFigure),
    Curves(CurvesFigure),
    Line(LineFigure),
    /// Nothing to plot: a titled frame with a message.
    Message {
        title: String,
        message: String,
    },
}

/// A figure ready to draw, named by the stem of its files.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub stem: String,
    pub caption: String,
    pub kind: FigureKind,
}

/// A drawn figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// With more points than this, dominated points are drawn without error bars.
pub const MAX_DOMINATED_ERROR_BARS: usize = 200;

const FRONT_COLOR: RGBColor = RGBColor(214, 39, 40);
const DOMINATED_COLOR: RGBColor = RGBColor(170, 170, 170);
const BASELINE_COLOR: RGBColor = RGBColor(31, 119, 180);
const STATIC_COLOR: RGBColor = RGBColor(44, 160, 44);
const NARROW_COLOR: RGBColor = RGBColor(148, 103, 189);

/// Draws a figure at `size` pixels into a PNG and an SVG.
pub fn render(figure: &Figure, size: (u32, u32)) -> Result<Rendered> {
    font::ensure_registered();
    let plot_err = |message: String| Error::Plot {
        figure: figure.stem.clone(),
        message,
    };
    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root, &figure.kind).map_err(|e| plot_err(e.to_string()))?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, &figure.kind).map_err(|e| plot_err(e.to_string()))?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    let mut png = Vec::new();
    {
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| Error::Png {
                figure: figure.stem.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(Rendered { png, svg })
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, kind: &FigureKind) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    match kind {
        FigureKind::Scatter(f) => draw_scatter(root, f),
        FigureKind::Heatmap(f) => draw_heatmap(root, f),
        FigureKind::Curves(f) => draw_curves(root, f),
        FigureKind::Line(f) => draw_line(root, f),
        FigureKind::Message { title, message } => draw_message(root, title, message),
    }
}

fn draw_message<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    message: &str,
) -> DrawResult<DB> {
    let inner = root.margin(14, 0, 0, 0).titled(title, (FAMILY, 22))?;
    let (w, h) = inner.dim_in_pixel();
    let style = TextStyle::from((FAMILY, 18))
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    inner.draw(&Text::new(
        message.to_string(),
        ((w / 2) as i32, (h / 2) as i32),
        style,
    ))?;
    Ok(())
}

/// `[lo, hi]` padded by 6% on each side; a single value gets a small window around it.
fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = (lo.abs() * 0.05).max(0.01);
        return (lo - pad, hi + pad);
    }
    (lo - 0.06 * span, hi + 0.06 * span)
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// A titled chart on f64 axes with the house mesh (light grid, labelled axes).
fn xy_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
) -> std::result::Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    DrawingAreaErrorKind<DB::ErrorType>,
> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    Ok(chart)
}

fn draw_line<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &LineFigure) -> DrawResult<DB> {
    let (x_lo, x_hi) = padded(min_max(f.points.iter().map(|p| p.0).chain([0.0])));
    let (y_lo, y_hi) = padded(min_max(f.points.iter().map(|p| p.1).chain([0.0])));
    let mut chart = xy_chart(
        root,
        &f.title,
        &f.x_desc,
        &f.y_desc,
        (x_lo, x_hi),
        (y_lo, y_hi),
    )?;
    // A step line: the value holds until the next result changes it.
    let mut steps = Vec::with_capacity(2 * f.points.len());
    for (i, &(x, y)) in f.points.iter().enumerate() {
        if i > 0 {
            steps.push((x, f.points[i - 1].1));
        }
        steps.push((x, y));
    }
    chart.draw_series(LineSeries::new(steps, PALETTE[0].stroke_width(2)))?;
    chart.draw_series(
        f.points
            .iter()
            .map(|&(x, y)| Circle::new((x, y), 3, PALETTE[0].filled())),
    )?;
    Ok(())
}

/// The chart of [`xy_chart`]: f64 on both axes.
type XyChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Accuracy against savings: baselines as dashed lines, dominated points in grey, the front in
/// red (joined), error bars, point labels and a legend.
fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &ScatterFigure,
) -> DrawResult<DB> {
    let (x_range, y_range) = scatter_ranges(f);
    let mut chart = xy_chart(root, &f.title, &f.x_desc, &f.y_desc, x_range, y_range)?;
    let text_style = TextStyle::from((FAMILY, 12)).color(&RGBColor(60, 60, 60));
    draw_baselines(&mut chart, &f.baselines, x_range, &text_style)?;
    let dominated: Vec<&ScatterPoint> = f.points.iter().filter(|p| !p.on_front).collect();
    let mut front: Vec<&ScatterPoint> = f.points.iter().filter(|p| p.on_front).collect();
    front.sort_by(|a, b| a.x.total_cmp(&b.x).then(b.y.total_cmp(&a.y)));
    let dominated_bars: &[&ScatterPoint] = if f.points.len() > MAX_DOMINATED_ERROR_BARS {
        &[]
    } else {
        &dominated
    };
    draw_error_bars(&mut chart, dominated_bars, DOMINATED_COLOR)?;
    draw_error_bars(&mut chart, &front, FRONT_COLOR)?;
    draw_dominated(&mut chart, &dominated)?;
    draw_front(&mut chart, &front)?;
    for series in &f.controls {
        draw_controls(&mut chart, series)?;
    }
    draw_point_labels(&mut chart, &f.points, x_range, &text_style)?;
    for series in &f.controls {
        draw_point_labels(&mut chart, &series.points, x_range, &text_style)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    Ok(())
}

/// The padded x and y ranges of a scatter: every point with its error bars, and the baselines.
fn scatter_ranges(f: &ScatterFigure) -> ((f64, f64), (f64, f64)) {
    let all = || {
        f.points
            .iter()
            .chain(f.controls.iter().flat_map(|c| &c.points))
    };
    let x = padded(min_max(all().flat_map(|p| [p.x - p.x_std, p.x + p.x_std])));
    let y = padded(min_max(
        all()
            .flat_map(|p| [p.y - p.y_err, p.y + p.y_err])
            .chain(f.baselines.iter().map(|b| b.1)),
    ));
    (x, y)
}

/// Each baseline as a dashed horizontal line with its label (one legend entry for all).
fn draw_baselines<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    baselines: &[(String, f64)],
    (x_lo, x_hi): (f64, f64),
    text_style: &TextStyle,
) -> DrawResult<DB> {
    for (i, (label, y)) in baselines.iter().enumerate() {
        let series = chart.draw_series(DashedLineSeries::new(
            vec![(x_lo, *y), (x_hi, *y)],
            8,
            5,
            BASELINE_COLOR.stroke_width(2),
        ))?;
        if i == 0 {
            series.label("baseline (ResNet)").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], BASELINE_COLOR.stroke_width(2))
            });
        }
        chart.draw_series(std::iter::once(
            EmptyElement::at((x_lo, *y))
                + Text::new(format!("baseline: {label}"), (6, -16), text_style.clone()),
        ))?;
    }
    Ok(())
}

/// Vertical then horizontal error bars of `points` (where their std is above zero).
fn draw_error_bars<DB: DrawingBackend>(
    chart: &mut XyChart<'_, DB>,
    points: &[&ScatterPoint],
    color: RGBColor,
) -> DrawResult<DB> {
    chart.draw_series(points.iter().filter(|p| p.y_err > 0.0).map(|p| {
        ErrorBar::new_vertical(
            p.x,
            p.y - p.y_err,
            p.y,
            p.y + p.y_err,
            color.stroke_width(1),
            6,
        )
    }))?;
    chart.draw_series(points.iter().filter(|p| p.x_std > 0.0).map(|p| {
        ErrorBar::new_horizontal(
            p.y,
            p.x - p.x_std,
            p.x,
            p.x + p.x_std,
            color.stroke_width(1),
            6,
        )
    }))?;
    Ok(())
}

/// The dominated points, grey, with their legend entry.
fn draw_dominated<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    dominated: &[&ScatterPoint],
) -> DrawResult<DB> {
    if dominated.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(
            dominated
                .iter()
                .map(|p| Circle::new((p.x, p.y), 4, DOMINATED_COLOR.filled())),
        )?
        .label("dominated")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, DOMINATED_COLOR.filled()));
    Ok(())
}

/// The front's points (sorted along x), joined by a line, with their legend entry.
fn draw_front<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    front: &[&ScatterPoint],
) -> DrawResult<DB> {
    if front.is_empty() {
        return Ok(());
    }
    chart.draw_series(LineSeries::new(
        front.iter().map(|p| (p.x, p.y)),
        FRONT_COLOR.stroke_width(2),
    ))?;
    chart
        .draw_series(
            front
                .iter()
                .map(|p| Circle::new((p.x, p.y), 5, FRONT_COLOR.filled())),
        )?
        .label("Pareto front")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (20, 0)], FRONT_COLOR.stroke_width(2))
                + Circle::new((10, 0), 4, FRONT_COLOR.filled())
        });
    Ok(())
}

/// One kind of control: its error bars and markers in its colour, with its legend entry.
fn draw_controls<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    series: &ControlSeries,
) -> DrawResult<DB> {
    if series.points.is_empty() {
        return Ok(());
    }
    let color = match series.marker {
        Marker::Triangle => STATIC_COLOR,
        Marker::Square => NARROW_COLOR,
    };
    let points: Vec<&ScatterPoint> = series.points.iter().collect();
    draw_error_bars(chart, &points, color)?;
    let name = series.name.clone();
    match series.marker {
        Marker::Triangle => {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| TriangleMarker::new((p.x, p.y), 7, color.filled())),
                )?
                .label(name)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
        }
        Marker::Square => {
            chart
                .draw_series(points.iter().map(|p| {
                    EmptyElement::at((p.x, p.y))
                        + Rectangle::new([(-5, -5), (5, 5)], color.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x + 5, y - 5), (x + 15, y + 5)], color.filled())
                });
        }
    }
    Ok(())
}

/// The labels of the points that show one; points at the same place share one label, and labels
/// in the right third of the plot go to the left of their point, so they stay inside.
fn draw_point_labels<DB: DrawingBackend>(
    chart: &mut XyChart<'_, DB>,
    points: &[ScatterPoint],
    (x_lo, x_hi): (f64, f64),
    text_style: &TextStyle,
) -> DrawResult<DB> {
    let mut labels: Vec<((f64, f64), String)> = Vec::new();
    for p in points.iter().filter(|p| p.show_label) {
        match labels.iter_mut().find(|(at, _)| *at == (p.x, p.y)) {
            Some((_, text)) => {
                text.push_str(", ");
                text.push_str(&p.label);
            }
            None => labels.push(((p.x, p.y), p.label.clone())),
        }
    }
    let right_third = x_lo + 0.66 * (x_hi - x_lo);
    chart.draw_series(labels.into_iter().map(|(at, text)| {
        let (offset, style) = if at.0 > right_third {
            (
                (-10, -15),
                text_style.clone().pos(Pos::new(HPos::Right, VPos::Top)),
            )
        } else {
            ((7, -15), text_style.clone())
        };
        EmptyElement::at(at) + Text::new(text, offset, style)
    }))?;
    Ok(())
}

/// Viridis, sampled at five stops and interpolated linearly; `t` in [0, 1].
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let scaled = t * (STOPS.len() - 1) as f64;
    let i = (scaled.floor() as usize).min(STOPS.len() - 2);
    let u = scaled - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn scale(value: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        (value - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// A heatmap axis of `n` unit cells over `[0, n]`, labelled at the cell centres.
struct Cells(usize);

impl Ranged for Cells {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let n = self.0.max(1) as f64;
        limit.0 + (f64::from(limit.1 - limit.0) * value / n).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0.max(1) as f64
    }
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &HeatmapFigure,
) -> DrawResult<DB> {
    let (w, _) = root.dim_in_pixel();
    let (main, bar) = root.split_horizontally(w.saturating_sub(110));
    let n_cols = f.column_labels.len();
    let n_rows = f.row_labels.len();
    let longest_row_label = f
        .row_labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let label_size = if n_rows > 25 { 10 } else { 12 };
    let mut chart = ChartBuilder::on(&main)
        .caption(&f.title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size((longest_row_label * label_size * 6 / 10 + 20).clamp(40, 280))
        .build_cartesian_2d(Cells(n_cols), Cells(n_rows))?;
    let index = |v: f64, n: usize| {
        let i = v.floor();
        (i >= 0.0 && (i as usize) < n).then_some(i as usize)
    };
    let column_label = |v: &f64| {
        index(*v, n_cols)
            .map(|i| f.column_labels[i].clone())
            .unwrap_or_default()
    };
    // Row 0 at the top.
    let row_label = |v: &f64| {
        index(*v, n_rows)
            .map(|i| f.row_labels[n_rows - 1 - i].clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_label_formatter(&column_label)
        .y_label_formatter(&row_label)
        .x_desc("block")
        .label_style((FAMILY, label_size))
        .axis_desc_style((FAMILY, 15))
        .draw()?;
    let show_values = n_rows <= 30 && n_cols <= 24;
    let mut cells = Vec::new();
    let mut texts = Vec::new();
    for (r, row) in f.values.iter().enumerate() {
        let y = (n_rows - 1 - r) as f64;
        for (c, value) in row.iter().enumerate() {
            let x = c as f64;
            let corners = [(x, y), (x + 1.0, y + 1.0)];
            let Some(value) = value else {
                cells.push(Rectangle::new(corners, RGBColor(235, 235, 235).filled()));
                continue;
            };
            let t = scale(*value, f.range);
            cells.push(Rectangle::new(corners, viridis(t).filled()));
            if show_values {
                let color: &RGBColor = if t > 0.6 { &BLACK } else { &WHITE };
                texts.push(Text::new(
                    format!("{value:.2}"),
                    (x + 0.5, y + 0.5),
                    TextStyle::from((FAMILY, 11))
                        .color(color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ));
            }
        }
    }
    chart.draw_series(cells)?;
    chart.draw_series(texts)?;
    draw_color_bar(&bar, f.range, &f.value_desc)
}

fn draw_color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (lo, hi): (f64, f64),
    desc: &str,
) -> DrawResult<DB> {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_top(50)
        .margin_bottom(62)
        .margin_left(8)
        .margin_right(4)
        .y_label_area_size(0)
        .right_y_label_area_size(56)
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_desc(desc)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()?;
    const STEPS: usize = 64;
    chart.draw_series((0..STEPS).map(|i| {
        let a = lo + (hi - lo) * i as f64 / STEPS as f64;
        let b = lo + (hi - lo) * (i + 1) as f64 / STEPS as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            viridis((i as f64 + 0.5) / STEPS as f64).filled(),
        )
    }))?;
    Ok(())
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &CurvesFigure,
) -> DrawResult<DB> {
    let area = root.margin(14, 0, 0, 0).titled(&f.title, (FAMILY, 22))?;
    let panels = area.split_evenly((1, 2));
    let (e_lo, e_hi) = min_max(f.series.iter().flat_map(|(_, s)| s.iter().map(|p| p.0)));
    let (e_lo, e_hi) = if e_hi > e_lo {
        (e_lo, e_hi)
    } else {
        (e_lo - 1.0, e_lo + 1.0)
    };
    for (panel_idx, panel) in panels.iter().enumerate() {
        let pick = |p: &(f64, f64, f64)| if panel_idx == 0 { p.1 } else { p.2 };
        let val = f.validation.iter().flatten().map(|p| p.1);
        let val = val.filter(|_| panel_idx == 0);
        let (lo, hi) = padded(min_max(
            f.series
                .iter()
                .flat_map(|(_, s)| s.iter().map(pick))
                .chain(val),
        ));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                if panel_idx == 0 && f.validation.iter().any(|v| !v.is_empty()) {
                    "accuracy (solid: test, dashed: validation)"
                } else if panel_idx == 0 {
                    "test accuracy"
                } else {
                    "nominal savings"
                },
                (FAMILY, 16),
            )
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(e_lo..e_hi, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|v: &f64| {
                if (v - v.round()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        if panel_idx == 0 {
            draw_validation_curves(&mut chart, f)?;
        }
        for (i, (label, points)) in f.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0, pick(p))),
                    color.stroke_width(2),
                ))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(if panel_idx == 0 {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperLeft
            })
            .draw()?;
    }
    Ok(())
}

/// Each series' validation accuracy, dashed in its colour, with one legend entry for all.
fn draw_validation_curves<'a, DB: DrawingBackend + 'a>(
    chart: &mut XyChart<'a, DB>,
    f: &CurvesFigure,
) -> DrawResult<DB> {
    let mut labelled = false;
    for (i, points) in f.validation.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let series = chart.draw_series(DashedLineSeries::new(
            points.iter().copied(),
            6,
            4,
            color.stroke_width(2),
        ))?;
        if !labelled {
            labelled = true;
            series.label("validation (dashed)").legend(|(x, y)| {
                let grey = RGBColor(90, 90, 90).stroke_width(2);
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (6, 0)], grey)
                    + PathElement::new(vec![(10, 0), (16, 0)], grey)
            });
        }
    }
    Ok(())
}
