"""``okapi-kit generate``: new instructions from seed tasks, with any registered generator."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OkapiError
from .commands import execute, fresh_option, quiet_option, set_option
from .stage_commands import _apply, _cli_path, _options, _source, options_option


@click.command("generate")
@click.option("--seeds", required=True, metavar="FILE",
              help="Seed tasks: JSON, JSONL, an Okapi-format file or a datasets folder.")
@click.option("--count", required=True, type=int, metavar="N", help="How many new instructions to generate.")
@click.option("--generator", required=True, metavar="NAME", help="A registered instruction generator.")
@click.option("--language", default="en", show_default=True, metavar="CODE",
              help="Language of the seeds and of the new instructions.")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Run folder; instructions go to OUTPUT/records/instructions/<language>.jsonl.")
@options_option
@set_option
@fresh_option
@quiet_option
def generate_cmd(seeds, count, generator, language, output, options_file, overrides, fresh, quiet) -> None:
    """Generate instructions from seed tasks (Self-Instruct with an LLM generator).

    The output holds the new tasks only (the seeds are read, not copied).

    \b
    Example:
      okapi-kit generate --seeds seed_tasks.jsonl --count 500 --generator openai \\
          --options gen.yaml --output runs/gen     # gen.yaml: {model: gpt-4o-mini}
    """
    if count < 1:
        raise OkapiError(f"--count must be at least 1 (got {count})", where="--count")
    options, base_dir = _options(options_file)
    data = {"name": "generate", "languages": [language], "source_language": language,
            "instructions": {"path": _cli_path(seeds, "--seeds"),
                             "generator": {"name": generator, "options": options},
                             "generate_count": count, "keep_seeds": False},
            "evaluation": {"models": [], "evaluators": []}}
    execute(_apply(data, overrides), source=_source("okapi-kit generate", options_file), base_dir=base_dir,
            run_dir=output, db=None, fresh=fresh, quiet=quiet, leaderboard=False)
    click.echo(f"instructions: {output.expanduser().resolve() / 'records' / 'instructions' / f'{language}.jsonl'}")
