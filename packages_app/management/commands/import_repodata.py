"""manage.py import_repodata <file-or-URL> --channel NAME [--label L] [--strict]

Real repodata holds specs py-rattler cannot read (conda-forge noarch: `fsspec[http] >2021.06.0`).
By default such builds are imported as they are, named in a summary and left unplannable (their
lint shows the spec as an error), and the command exits 0; `--strict` refuses the whole file."""

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from tqdm import tqdm

from packages_app.adapters.repodata import RepodataError
from packages_app.models import Channel
from packages_app.services.catalog import import_repodata


class Command(BaseCommand):
    help = (
        "Import a repodata.json (path, file:// or http(s) URL) into a configured channel: "
        "Builds are upserted in bulk; a second import of the same file writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="Path or URL of a <subdir>/repodata.json")
        parser.add_argument("--channel", required=True, help="Name of a configured channel")
        parser.add_argument("--label", default="", help="Label of that channel (default: none)")
        parser.add_argument(
            "--withdraw-missing",
            action="store_true",
            help="Mark builds of this channel/subdir that the file no longer lists as withdrawn",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse the whole file when a spec cannot be read (default: import it, and "
            "name the builds that cannot be planned)",
        )

    def handle(
        self, *args, source, channel, label, withdraw_missing, no_progress, strict, **options
    ):
        try:
            target = Channel.objects.get(name=channel, label=label)
        except Channel.DoesNotExist:
            known = ", ".join(str(c) for c in Channel.objects.all()) or "none (run seed_reference)"
            raise CommandError(
                f"Unknown channel {channel!r}"
                + (f" with label {label!r}" if label else "")
                + f". Configured channels: {known}"
            ) from None
        bar = None

        def progress(advanced: int, total: int) -> None:
            nonlocal bar
            if no_progress:
                return
            if bar is None:
                bar = tqdm(total=total, unit="rec", desc=f"{target}", file=self.stderr._out)
            bar.update(advanced)

        try:
            report = import_repodata(
                channel=target,
                source=source,
                withdraw_missing=withdraw_missing,
                progress=progress,
                lenient_specs=not strict,
            )
        except RepodataError as exc:
            raise CommandError(f"Nothing imported: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(
            f"{report.channel}/{report.subdir}: {report.records} records, "
            f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.withdrawn} withdrawn"
        )
        if report.unplannable:
            self.stdout.write(
                f"{len(report.unplannable)} build(s) imported but not plannable (specs py-rattler "
                "cannot read; each build's lint shows them):"
            )
            for filename, specs in report.unplannable:
                self.stdout.write(f"  {filename}: {', '.join(specs)}")
