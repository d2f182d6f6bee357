"""``gen0 scaling report``: the fits as JSON, the plots, and a short markdown summary, next to the
results (or in another folder, e.g. docs/scaling/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gen0_policy.scaling.analysis import analyze, to_json
from gen0_policy.scaling.plot import write_plots
from gen0_policy.scaling.success import read_success, success_rows
from gen0_policy.scaling.sweep import read_results


def _g(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _ci(pair: Any) -> str:
    return f"[{_g(pair[0])}, {_g(pair[1])}]" if pair else ""


def _caveat(prediction: dict[str, Any]) -> str:
    """Why a prediction is not to be taken at its word: outside the measured sizes, or unreachable."""
    if prediction.get("note"):
        return f" ({prediction['note']})"
    return " (extrapolated beyond the sizes measured)" if prediction.get("extrapolated") else ""


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not judged (fewer than 3 sizes)"}[met]


def _fit_row(curve: dict[str, Any], form: str, f: dict[str, Any]) -> str:
    ex = curve.get("extrapolation")
    check = f"{ex['relative_error']:.1%} ({'ok' if ex['ok'] else 'BENDS'})" if ex else ""
    cells = [curve["name"], str(curve["points"]), f"{curve['decades']:.2f}", form]
    for name in ("alpha", "x_c", "E"):
        cells.append(f"{_g(f.get(name))} {_ci(f.get(name + '_ci95'))}")
    cells += [f"{f['r2']:.3f}", check]
    return "| " + " | ".join(cells) + " |"


def markdown(summary: dict[str, Any], images: list[Path], title: str, success: list[dict[str, Any]] = ()) -> str:
    lines = [f"# Scaling study: {title}", "", f"{summary['runs']} finished runs.", ""]
    lines += ["## Fits (least squares on log error; 95 % bootstrap intervals over runs and seeds)", ""]
    lines += ["| curve | points | decades | form | alpha | x_c | E | R^2 | leave-largest-out error |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in summary["curves"]:
        lines += [_fit_row(c, form, f) for form, f in c["fits"].items()]
        if not c["fits"]:
            lines.append(f"| {c['name']} | {c['points']} | {c['decades']:.2f} | too few sizes to fit | | | | | |")
    lines += ["", "## Aims (measured, met or not)", ""]
    aims = summary["aims"]
    if "power_law_r2" in aims:
        a = aims["power_law_r2"]
        lines.append(
            f"- {a['aim']} (model {a['model']}): R^2 = {a['r2']:.3f} over {a['decades']:.2f} decades: "
            + _verdict(a["met"])
        )
    if "extrapolation" in aims:
        a = aims["extrapolation"]
        lines.append(f"- {a['aim']}: {a['relative_error']:.1%}: {_verdict(a['met'])}")
    if "alpha_by_model" in aims:
        alphas = ", ".join(f"{m}: {v:.3f}" for m, v in aims["alpha_by_model"].items())
        lines.append(
            f"- data exponent alpha by model size (a model that stops absorbing data has a small one): {alphas}"
        )
    if "posttraining_multiplier" in aims:
        a = aims["posttraining_multiplier"]
        b, s = a["base"], a["scratch"]
        lines.append(
            f"- {a['aim']}: at error {a['target_error']:.4g} scratch needs {_g(s.get('demos'))} demos, "
            f"the base {_g(b.get('demos'))} {_ci(b.get('ci95'))}: multiplier {_g(a['multiplier'])} "
            f"{_ci(a.get('multiplier_ci95'))}: {_verdict(a['met'])}"
        )
    if summary["predictions"]:
        lines += ["", "## Predictions", ""]
    for target, row in summary["predictions"].items():
        if "pretraining_episodes" in row:
            p = row["pretraining_episodes"]
            lines.append(
                f"- error {target}: {_g(p.get('episodes'))} pretraining episodes {_ci(p['ci95'])} (model {p['model']})"
                + _caveat(p)
            )
        if "posttraining_demos" in row:
            p = row["posttraining_demos"]
            lines.append(
                f"- error {target}: {_g(p['base'].get('demos'))} demos from the base {_ci(p['base']['ci95'])}, "
                f"{_g(p['scratch'].get('demos'))} from scratch {_ci(p['scratch']['ci95'])}, x{_g(p['multiplier'])}"
            )
    if success:
        lines += ["", "## Closed-loop success (`gen0 scaling success`: rollouts on unseen seeds, own cameras)", ""]
        lines += ["| run | model | trained on | next-action error | successes |", "| --- | --- | --- | --- | --- |"]
        for row in success:
            lines.append(
                f"| {row['id']} | {row['model']} | {row['what']} | {_g(row['downstream_error'])} | "
                f"{row['successes']}/{row['episodes']} |"
            )
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def write_report(
    results: str | Path, out_dir: str | Path | None = None, targets: tuple[float, ...] = (), bootstrap: int = 300
) -> Path:
    """fits.json, the PNGs and report.md into ``out_dir`` (default: the results' folder)."""
    results = Path(results)
    folder = results if results.is_dir() else results.parent
    out = Path(out_dir) if out_dir else folder
    out.mkdir(parents=True, exist_ok=True)
    records = read_results(results)
    summary = analyze(records, bootstrap=bootstrap, targets=targets)
    images = write_plots(records, summary, out)
    (out / "fits.json").write_text(json.dumps(to_json(summary), indent=2))
    study = folder / "study.json"
    title = json.loads(study.read_text()).get("name", folder.name) if study.is_file() else folder.name
    path = out / "report.md"
    path.write_text(markdown(summary, images, title, success_rows(records, read_success(folder))))
    return path
