"""The `adaptkit` command line: one click group, each command a thin wrapper over a function.

A user mistake (AdaptkitError) prints one line, `error: ...`, and exits with 2.
"""

from __future__ import annotations

import json
import sys

import click

from adaptkit.errors import AdaptkitError
from adaptkit.tasks import TASKS


def fail(message: str, code: int = 2) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def os_error_line(err: OSError) -> str:
    """An OS error (disk full, read-only, not a folder) as one line naming the path."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


class _Group(click.Group):
    """Every mistake as one line, `error: ...`, and exit code 2: AdaptkitError, an OS error naming
    its path, and click's own usage errors (which would otherwise print four lines)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AdaptkitError as err:
            fail(str(err))
        except OSError as err:
            fail(os_error_line(err))

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as err:
            hint = f" (see {err.ctx.command_path} --help)" if err.ctx else ""
            fail(f"{err.format_message()}{hint}", err.exit_code)
        except click.ClickException as err:
            fail(err.format_message(), err.exit_code)
        except click.Abort:
            fail("aborted", 130)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group)
@click.version_option(package_name="adaptkit")
def main() -> None:
    """Fine-tune the adapters of Speech-LLMs: train the projector and new-token rows."""


DEVICE_HELP = "Where to {what}: cuda, cuda:1, mps or cpu [default: cuda when torch sees a GPU, else cpu]."


def _recipe_and_overrides(recipe: str | None, overrides: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """`adaptkit plan train.lr=1` means the embedded default recipe with an override."""
    if recipe and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        return None, (recipe, *overrides)
    return recipe, overrides


@main.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def plan(recipe: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show what RECIPE trains, per component (no RECIPE: the embedded tiny default).

    OVERRIDES are KEY=VALUE pairs such as freeze.lora.r=16 or 'freeze.train=[projector]'.
    """
    from adaptkit.plan import plan as run_plan
    from adaptkit.recipe import Recipe

    recipe, overrides = _recipe_and_overrides(recipe, overrides)
    report = run_plan(Recipe.load(recipe, overrides))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        Console().print(report.table())
        Console().print(report.where_table())


@main.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--resume", is_flag=True, help="Continue from the newest readable checkpoint in the recipe's output_dir.")
@click.option("--force", is_flag=True, help="Delete an earlier run in output_dir and start over.")
@click.option("--allow-change", "allow_change", multiple=True, metavar="KEY",
              help="With --resume: accept a changed KEY (train.lr, train.weight_decay, train.clip, train.max_steps, train.epochs).")
def train(recipe: str | None, overrides: tuple[str, ...], resume: bool, force: bool, allow_change: tuple[str, ...]) -> None:
    """Train RECIPE (no RECIPE: the embedded tiny default on synthetic data).

    OVERRIDES are KEY=VALUE pairs such as train.lr=1e-4 train.max_steps=50. SIGTERM or Ctrl-C
    writes a checkpoint at the next step and exits with the command that resumes.
    """
    import logging

    from adaptkit.recipe import Recipe
    from adaptkit.train import run
    from adaptkit.train.guard import Interrupted

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe, overrides = _recipe_and_overrides(recipe, overrides)
    if allow_change and not resume:
        raise AdaptkitError("--allow-change: only with --resume")
    if resume and force:
        raise AdaptkitError("--resume and --force contradict: --resume continues the run, --force deletes it")
    loaded = Recipe.load(recipe, overrides)
    try:
        summary = run(loaded, resume=resume, force=force, allow_change=allow_change)
    except Interrupted as stop:
        click.echo(str(stop), err=True)
        sys.exit(128 + stop.signum)
    if summary.finished_before:
        click.echo(f"the run in {summary.output_dir} already finished ({summary.steps} steps); nothing to do, nothing changed")
        return
    click.echo(
        f"trained {summary.steps} steps in {summary.seconds:.1f} s ({summary.samples_per_second:.1f} samples/s), "
        f"{summary.trainable_parameters:,} trainable parameters, final loss {summary.final_loss:.4f}"
        + (f", dev loss {summary.dev_loss:.4f}" if summary.dev_loss is not None else "")
        + f"; adapter and merged checkpoint in {summary.output_dir}"
    )


@main.command(name="eval")
@click.argument("target", required=False, type=click.Path())
@click.option("--data", "data", multiple=True, help="Test manifest (JSONL); repeat for several sets (named by their folder).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder [default: eval/ beside the adapter].")
@click.option("--task", type=click.Choice(sorted(TASKS)), default=None,
              help="Task (default: the adapter's, or the one the --hypotheses rows name).")
@click.option("--hypotheses", type=click.Path(dir_okay=False), default=None, help="Score an earlier decoded.jsonl instead of decoding.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--limit", type=int, default=None, help="Decode at most this many samples per manifest.")
@click.option("--no-adapter", is_flag=True, help="With a recipe: score its base model, without the trained adapter.")
@click.option("--device", default=None, help=DEVICE_HELP.format(what="decode"))
@click.option("--no-force-language", is_flag=True,
              help="Let the model write `language X<asr_text>` itself (transcribe() without language=) instead of forcing it.")
def eval_(target, data, out, task, hypotheses, batch_size, limit, no_adapter, device, no_force_language) -> None:
    """Decode test sets with TARGET (recipe, adapter folder or checkpoint) and write a report.

    The report folder holds report.md (headline table first), report.json, plots/ and decoded.jsonl.
    """
    from pathlib import Path

    from adaptkit.eval.run import evaluate
    from adaptkit.errors import AdaptkitError

    if not target and not hypotheses:
        raise AdaptkitError("eval: give a TARGET (recipe, adapter or checkpoint) or --hypotheses")
    if out is None:
        base = Path(hypotheses).parent if hypotheses else (Path(target).parent if Path(target).is_file() else Path(target))
        out = base / "eval"
    scores = evaluate(target, list(data), out, task, hypotheses, batch_size, limit, adapter=not no_adapter,
                      device=device, force_language=not no_force_language)
    head = {k: v for k, v in scores.overall.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    click.echo(f"scored {len(scores.rows)} samples; report in {out}/report.md")
    click.echo(", ".join(f"{k} {v:.4g}" for k, v in list(head.items())[:8]))


@main.command(name="compare")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--variant", "variants", multiple=True, help="A variant name (shipped: projector, lora, lora_all, projector_lora, tokens, or one from --variants).")
@click.option("--variants", "variants_file", type=click.Path(dir_okay=False), default=None, help="A compare YAML: variants: {name: freezing spec}.")
@click.option("--test", "tests", multiple=True, help="Test manifest (default: the recipe's in-domain and out-of-domain sets).")
@click.option("--out", type=click.Path(file_okay=False), default="compare", show_default=True)
@click.option("--no-share", is_flag=True, help="Do not share cached encoder outputs between variants.")
@click.option("--limit", type=int, default=None, help="Score at most this many samples per test set.")
@click.option("--device", default=None, help=DEVICE_HELP.format(what="decode the test sets"))
def compare_(recipe, overrides, variants, variants_file, tests, out, no_share, limit, device) -> None:
    """Train every variant of RECIPE on the same data and budget, score them, write one report."""
    from adaptkit.compare import compare

    results = compare(recipe, list(variants), out, variants_file, list(tests), list(overrides), not no_share, limit,
                      device=device)
    for r in results:
        click.echo(f"{r.name}: {r.status}" + (f", cp_error_rate {r.scores.get('all', {}).get('cp_error_rate')}" if r.scores else ""))
    click.echo(f"report: {out}/report/report.md")


@main.command(name="cascade")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--device", default=None, help=DEVICE_HELP.format(what="run the turn models"))
def cascade_(recipe, overrides, device) -> None:
    """Streaming end of turn: train the gate, run each turn model of RECIPE as a speculative cascade
    (and on every chunk), run the baselines, write one comparison table and a trade-off plot."""
    import logging

    from adaptkit.turn.study import CascadeRecipe, run_study

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    r = CascadeRecipe.load(recipe, overrides)
    report = run_study(r, device)
    for name, s in report["systems"].items():
        click.echo(f"{name}: calls/min {s['calls_per_minute']}, macro F1 {s['frames']['macro_f1']:.3f}")
    if report["final_punctuation"].get("data"):
        from adaptkit.turn.punctuation import describe

        click.echo(f"{r.test} end-of-turn data, {describe(report['final_punctuation'])}")
    click.echo(f"report: {r.output_dir}/report.md")


@main.group(name="turn")
def turn_() -> None:
    """Turn-taking tools: the GRU gate outside PyTorch."""


@turn_.command(name="export-gate")
@click.argument("gate", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--int8", is_flag=True, help="Quantize the weights to int8 (onnxruntime dynamic quantization).")
def export_gate_(gate, out, int8) -> None:
    """Export the GRU gate GATE (a gate.safetensors from `adaptkit cascade`) to OUT as ONNX: one
    streaming step (100 ms log-mel chunk + GRU state -> P(speech) + state), fp32 or int8."""
    from pathlib import Path

    from adaptkit.turn.gate import load_gate
    from adaptkit.turn.gate_onnx import export_gate

    path = export_gate(load_gate(Path(gate)), out, int8)
    click.echo(f"exported {gate} -> {path} ({'int8' if int8 else 'fp32'}, {path.stat().st_size:,} bytes)")


@main.command(name="export")
@click.argument("adapter", type=click.Path(exists=True))
@click.option("--to", "to", type=click.Choice(["peft", "merged", "hub-folder"]), required=True,
              help="peft: a PEFT LoRA folder; merged: a full checkpoint; hub-folder: merged + a README.md model card.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: <to> beside the adapter].")
@click.option("--summary", type=click.Path(dir_okay=False), default=None, help="The run's summary.json (hub-folder) [default: found beside the adapter].")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="The eval report.json (hub-folder) [default: eval/report.json beside the adapter].")
def export_(adapter, to, out, summary, report) -> None:
    """Export ADAPTER (an adapter folder or a recipe) as a PEFT folder, a merged checkpoint or a hub folder."""
    from pathlib import Path

    from adaptkit.export import export

    if out is None:
        out = Path(adapter).parent / to.replace("-", "_")
    result = export(adapter, out, to, summary, report)
    click.echo(f"exported {adapter} --to {to}: {result.path}")
    for note in result.notes:
        click.echo(f"note: {note}")


@main.command(name="convert")
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--to", "to", type=click.Choice(["native", "qwen_asr"]), default=None,
              help="Target layout [default: the other one than SRC's].")
@click.option("--force", is_flag=True, help="Replace a non-empty DST.")
def convert_(src, dst, to, force) -> None:
    """Convert the Qwen3-ASR checkpoint SRC between qwen_asr's layout and transformers 5's native
    one into DST (weights renamed, bytes unchanged; runs on either stack)."""
    from adaptkit.convert import convert

    click.echo(convert(src, dst, to, force).line())


def _register() -> None:
    from adaptkit.synth.cli import synth

    main.add_command(synth)


_register()

if __name__ == "__main__":
    main()
