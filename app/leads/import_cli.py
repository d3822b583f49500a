"""`flask leads import FILE --map col=field …`: the Import page's job, in the terminal."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.db import db
from app.leads import imports
from app.templating import plural


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Map a column to email, first_name, last_name, company, job_title, phone, "
                   "country, attr (kept by the column's name) or ignore. Unmapped columns are "
                   "guessed from their names.")
@click.option("--source", default="Import", show_default=True, help="Credited to new leads.")
@click.option("--consent-basis", type=click.Choice(imports.CONSENT_BASES),
              default="not recorded", show_default=True)
@click.option("--consent-text", default="", help="What these people agreed to.")
@click.option("--sequence", "sequence_id", type=int, help="Enroll every imported lead.")
@with_appcontext
def import_command(path, maps, source, consent_basis, consent_text, sequence_id) -> None:
    """Import leads from a UTF-8 CSV file (dedupes by email; suppressed stay suppressed)."""
    with open(path, "rb") as handle:
        try:
            imp = imports.create(handle, path, None)
        except imports.ImportProblem as exc:
            raise click.ClickException(str(exc)) from None
    for item in maps:
        column, sep, target = item.partition("=")
        if not sep or column not in imp.columns:
            raise click.ClickException(f"--map {item}: the file has no column “{column}” "
                                       f"(it has: {', '.join(imp.columns)}).")
        target = target.strip()
        if target == "attr":
            target = f"attr:{column}"
        elif target in ("ignore", ""):
            target = imports.IGNORE
        elif target not in imports.FIELDS:
            raise click.ClickException(f"--map {item}: “{target}” is not a field; choose "
                                       f"{', '.join(imports.FIELDS)}, attr or ignore.")
        imp.mapping = {**imp.mapping, column: target}
    try:
        imports.check_mapping(imp.mapping)
    except imports.ImportProblem as exc:
        raise click.ClickException(str(exc)) from None
    imp.source, imp.consent_basis, imp.consent_text = source, consent_basis, consent_text
    imp.sequence_id = sequence_id
    imp.status = "queued"
    db.session.commit()
    with click.progressbar(length=100, label="Importing") as bar:
        shown = [0]

        def progress(current: imports.LeadImport) -> None:
            bar.update(current.percent - shown[0])
            shown[0] = current.percent

        imports.run_import(imp.id, progress)
        bar.update(100 - shown[0])
    click.echo(f"{plural(imp.created, 'new lead')}, {imp.updated} updated, "
               f"{imp.unchanged} unchanged, {imp.rejected} rejected"
               + (f" (see {imports.errors_path(imp)})" if imp.rejected else "") + ".")
