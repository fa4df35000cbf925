//! "Does it route?": for each configuration on the front, whether its gates route per input or
//! are a static pruning in disguise (each block open, or closed, for nearly every input), from
//! the final gate statistics per block ([`BlockGateMean::routes`], cg-core's rule), and a figure
//! of the front's open rate per block and class when the runs recorded it.

use cg_core::{DatasetKind, ROUTING_SHARE, STATIC_CLOSED};

use super::fronts::sorted_front;
use super::model::{Report, ReportOptions};
use crate::aggregate::{BlockGateMean, Configuration};
use crate::doc::Block;
use crate::plots::{Figure, FigureKind, HeatmapFigure};

/// The class names of CIFAR-10, by label.
const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The class names of the front's data set when the report knows them (CIFAR-10 only: an IDX
/// directory may hold MNIST or Fashion-MNIST, an image folder's names are not in the records).
fn class_names(report: &Report) -> Option<&'static [&'static str]> {
    let first = report.front().next()?;
    match first.rerun.config.dataset.kind {
        DatasetKind::CifarBin => Some(&CIFAR10_CLASSES),
        _ => None,
    }
}

/// `'coat'` when the name is known, else `class 4`.
fn class_label(names: Option<&[&str]>, k: usize) -> String {
    match names.and_then(|n| n.get(k)) {
        Some(name) => format!("class '{name}'"),
        None => format!("class {k}"),
    }
}

/// `block 3`, `blocks 1 and 3`, `blocks 0, 2 and 4`.
fn blocks_text(blocks: &[usize]) -> String {
    let ids: Vec<String> = blocks.iter().map(usize::to_string).collect();
    match ids.as_slice() {
        [one] => format!("block {one}"),
        [rest @ .., last] => format!("blocks {} and {last}", rest.join(", ")),
        [] => String::new(),
    }
}

fn percent(v: f64) -> String {
    format!("{:.0}%", 100.0 * v)
}

/// One routing block: its open rate, and the classes that open it most and least.
fn routing_text(g: &BlockGateMean, names: Option<&[&str]>) -> String {
    let mut text = format!(
        "block {} open for {} of inputs",
        g.block_idx,
        percent(g.gate_open_rate)
    );
    let rates = g.class_open_rates.as_deref().unwrap_or_default();
    let most = (0..rates.len()).max_by(|&a, &b| rates[a].total_cmp(&rates[b]).then(b.cmp(&a)));
    let least = (0..rates.len()).min_by(|&a, &b| rates[a].total_cmp(&rates[b]).then(a.cmp(&b)));
    if let (Some(most), Some(least)) = (most, least) {
        text.push_str(&format!(
            ", {} of {}",
            percent(rates[most]),
            class_label(names, most)
        ));
        if least != most {
            text.push_str(&format!(
                ", {} of {}",
                percent(rates[least]),
                class_label(names, least)
            ));
        }
    }
    text
}

/// The blocks closed, and those open, for nearly every input (mean open rate over the seeds at
/// most 1 − [`STATIC_CLOSED`], or at least it: the rule of the `static` control), then those that
/// each seed keeps static but not the same way (open for every input in some seeds, closed in
/// others).
fn static_text(gates: &[&BlockGateMean]) -> String {
    let side = |g: &BlockGateMean| -> u8 {
        if g.gate_open_rate <= 1.0 - STATIC_CLOSED {
            0
        } else if g.gate_open_rate >= STATIC_CLOSED {
            1
        } else {
            2
        }
    };
    let pick = |which: u8| -> Vec<usize> {
        gates
            .iter()
            .filter(|g| side(g) == which)
            .map(|g| g.block_idx)
            .collect()
    };
    let mut parts: Vec<String> = [(0, "closed"), (1, "open")]
        .into_iter()
        .filter_map(|(which, what)| {
            let blocks = pick(which);
            (!blocks.is_empty()).then(|| format!("{} {what} for every input", blocks_text(&blocks)))
        })
        .collect();
    parts.extend(gates.iter().filter(|g| side(g) == 2).map(|g| {
        format!(
            "block {} open for every input in some seeds and closed in others ({} open over \
             the seeds)",
            g.block_idx,
            percent(g.gate_open_rate)
        )
    }));
    parts.join(", ")
}

/// The line of one configuration: `static: …`, or `routes: …` with the static blocks after.
pub(super) fn routing_line(c: &Configuration, names: Option<&[&str]>) -> String {
    let head = format!("{} `{}`", c.id, c.label);
    if c.gates.is_empty() {
        return format!("{head}: no gate statistics.");
    }
    let (routing, fixed): (Vec<&BlockGateMean>, Vec<&BlockGateMean>) =
        c.gates.iter().partition(|g| g.routes());
    if routing.is_empty() {
        if fixed.iter().all(|g| g.gate_open_rate >= STATIC_CLOSED) {
            return format!("{head}: static: every block open for every input (the full network).");
        }
        return format!("{head}: static: {}.", static_text(&fixed));
    }
    let routes: Vec<String> = routing.iter().map(|g| routing_text(g, names)).collect();
    let mut line = format!("{head}: routes: {}", routes.join("; "));
    if !fixed.is_empty() {
        line.push_str(&format!("; static: {}", static_text(&fixed)));
    }
    line.push('.');
    line
}

/// "Does it route?": one line per front configuration, best first.
pub(super) fn routing_section(report: &Report) -> Vec<Block> {
    let front = sorted_front(report);
    if front.is_empty() {
        return Vec::new();
    }
    let names = class_names(report);
    let with_classes = front
        .iter()
        .any(|c| c.gates.iter().any(|g| g.class_open_rates.is_some()));
    let mut text = format!(
        "From the final gate statistics of each front configuration (mean over seeds): a block \
         routes when at least {} of inputs take the other way than most (`min(open, 1 − open)`, \
         its routing share); below that it counts as static, open or closed \"for every input\". \
         A configuration whose blocks are all static is a pruned network, not a router.",
        percent(ROUTING_SHARE)
    );
    if with_classes {
        text.push_str(
            " For a routing block, the classes that open it most and least follow its rate; \
             `gates_class` shows every block and class.",
        );
    }
    vec![
        Block::Heading(2, "Does it route?".into()),
        Block::Paragraph(text),
        Block::List(front.iter().map(|c| routing_line(c, names)).collect()),
    ]
}

/// The front's open rate per gated block (rows, `c2 b3`) and class (columns), when some front
/// configuration recorded rates per class; at most `max_heatmap_rows` rows, best first.
pub(super) fn class_figure(report: &Report, opts: &ReportOptions) -> Option<Figure> {
    let names = class_names(report);
    let mut row_labels = Vec::new();
    let mut rows: Vec<&[f64]> = Vec::new();
    for c in sorted_front(report) {
        for g in &c.gates {
            if let Some(rates) = &g.class_open_rates {
                row_labels.push(format!("{} b{}", c.id, g.block_idx));
                rows.push(rates);
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let shown = rows.len().min(opts.max_heatmap_rows.max(1));
    let n_classes = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let column_labels = (0..n_classes)
        .map(|k| match names.and_then(|n| n.get(k)) {
            Some(name) => name.to_string(),
            None => k.to_string(),
        })
        .collect();
    let subset = if shown < rows.len() {
        format!(" Showing {shown} of {} rows (best first).", rows.len())
    } else {
        String::new()
    };
    Some(Figure {
        stem: "gates_class".into(),
        caption: format!(
            "Gate-open rate per class of the front's gated blocks, mean over seeds.{subset}"
        ),
        kind: FigureKind::Heatmap(HeatmapFigure {
            title: format!("{}: open rate per class (front)", report.sweep.name),
            value_desc: "fraction of the class's samples executed".into(),
            column_labels,
            row_labels: row_labels[..shown].to_vec(),
            values: rows[..shown]
                .iter()
                .map(|r| (0..n_classes).map(|k| r.get(k).copied()).collect())
                .collect(),
            range: (0.0, 1.0),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(block_idx: usize, open: f64, share: f64, classes: Option<Vec<f64>>) -> BlockGateMean {
        BlockGateMean {
            block_idx,
            gate_open_rate: open,
            mean_cir: 0.5,
            routing_share: share,
            class_open_rates: classes,
        }
    }

    #[test]
    fn blocks_are_listed_in_words() {
        assert_eq!(blocks_text(&[3]), "block 3");
        assert_eq!(blocks_text(&[1, 3]), "blocks 1 and 3");
        assert_eq!(blocks_text(&[0, 2, 4]), "blocks 0, 2 and 4");
    }

    #[test]
    fn routing_and_static_blocks_in_words() {
        let classes = Some(vec![0.10, 0.81, 0.34, 0.02]);
        let gates = [
            gate(0, 1.0, 0.0, None),
            gate(1, 0.0, 0.0, None),
            gate(3, 0.34, 0.34, classes),
        ];
        let refs: Vec<&BlockGateMean> = gates[..2].iter().collect();
        assert_eq!(
            static_text(&refs),
            "block 1 closed for every input, block 0 open for every input"
        );
        assert_eq!(
            routing_text(&gates[2], None),
            "block 3 open for 34% of inputs, 81% of class 1, 2% of class 3"
        );
        let names = ["t-shirt", "coat", "dress", "bag"];
        assert_eq!(
            routing_text(&gates[2], Some(&names)),
            "block 3 open for 34% of inputs, 81% of class 'coat', 2% of class 'bag'"
        );
        // Seeds that disagree on a static block are said to.
        let split = [gate(0, 0.0, 0.0, None), gate(2, 1.0 / 3.0, 0.0, None)];
        let refs: Vec<&BlockGateMean> = split.iter().collect();
        assert_eq!(
            static_text(&refs),
            "block 0 closed for every input, block 2 open for every input in some seeds and \
             closed in others (33% open over the seeds)"
        );
        // A block at 97% open has a routing share under 5%: static.
        assert!(!gate(2, 0.97, 0.03, None).routes());
        assert!(gates[2].routes());
    }
}
