"""The wheel holds one import package, `usercredits`, so installing the service next to
packages named `schema`, `models`, `services` or `server` (PyPI's `schema` is one) breaks
neither, and uninstalling one removes none of the other's files; the files its pages
serve (the demo page's, GraphiQL's) travel in it."""

import subprocess
import sys
import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

from usercredits.server.graphiql import ASSETS, missing_assets

ROOT = Path(__file__).resolve().parent.parent
THEIRS = '"""A stand-in for PyPI\'s schema package."""\nORIGIN = "theirs"\n'


def test_the_wheel_installs_beside_a_package_named_schema(tmp_path: Path) -> None:
    [wheel] = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert tops == {"usercredits", "usercredits_graphql-0.1.0.dist-info"}
        # The demo page's files travel with the package that serves them.
        demo = {"index.html", "demo.css", "demo.js"}
        assert demo <= {n.rsplit("/", 1)[-1] for n in archive.namelist() if "/demo/" in n}
        # And GraphiQL's, built (make graphiql) though git ignores them.
        assert not missing_assets(), "GraphiQL's assets are not built: run make graphiql"
        graphiql = {"usercredits/server/graphiql/index.html"} | {
            f"usercredits/server/graphiql/assets/{name}" for name in ASSETS
        }
        assert graphiql <= set(archive.namelist())
        assert not [n for n in archive.namelist() if n.endswith("/.built")]
        site = tmp_path / "site-packages"
        (site / "schema").mkdir(parents=True)
        (site / "schema" / "__init__.py").write_text(THEIRS)
        archive.extractall(site)  # what pip does with a wheel: unpack it into site-packages
    assert (site / "schema" / "__init__.py").read_text() == THEIRS
    check = (
        "import schema, usercredits.api as ours; "
        "assert schema.ORIGIN == 'theirs'; "
        f"assert ours.__file__.startswith({str(site)!r}); "
        "print(ours.build_schema().as_str().count('type Query'))"
    )
    ran = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {check}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "1"
