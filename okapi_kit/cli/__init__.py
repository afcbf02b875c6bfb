"""The ``okapi-kit`` command. Heavy libraries are imported inside the commands that need them."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import OkapiError
from .commands import init_cmd, plugins_cmd, run_cmd, validate_cmd
from .generate import generate_cmd
from .leaderboard import leaderboard_cmd
from .stage_commands import evaluate_cmd, rank_cmd, train_cmd, translate_cmd


class OkapiGroup(click.Group):
    """Adds plugin commands lazily, the first time the command list is needed."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            from ..plugins import plugin_manager

            plugin_manager().hook.okapi_register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self._add_plugin_commands()
        return super().get_command(ctx, name)


@click.group(cls=OkapiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="okapi-kit")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """okapi-kit: align and evaluate LLMs in many languages (the Okapi recipe).

    \b
    Examples:
      okapi-kit run                      # the bundled demo, end to end on a CPU
      okapi-kit init my.yaml && okapi-kit run my.yaml
      okapi-kit leaderboard --format markdown
    """
    ctx.obj = {"debug": debug}


for _cmd in (run_cmd, validate_cmd, init_cmd, evaluate_cmd, train_cmd, translate_cmd, rank_cmd, generate_cmd,
             plugins_cmd, leaderboard_cmd):
    cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="okapi-kit", standalone_mode=False)
    except OkapiError as exc:
        if debug:
            raise
        from rich.console import Console
        from rich.markup import escape

        # soft_wrap: no re-wrapping at 80 columns in logs and pipes; emoji=False: "tiny:llama:64x2"
        # must not turn into a llama emoji
        Console(stderr=True, highlight=False, soft_wrap=True, emoji=False).print(f"[bold red]error:[/] {escape(exc.render())}")
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        # one `error:` line like every other bad input, with where to look for the right usage
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "okapi-kit"
        click.echo(f"error: {exc.format_message()}\n  hint: see '{command} --help'", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted; rerun the same command to continue where it stopped.", err=True)
        return 130
    return 0


