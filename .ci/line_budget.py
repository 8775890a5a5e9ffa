"""Line counts of the engine, the ops and the package, against the budgets in
pyproject.toml's [tool.mibun.line-budget] (tinygrad's sz.py is the model).

Prints the counts and exits 1 when a budget is exceeded: ``core`` for src/mibun/core.py,
``functions`` for src/mibun/functions/ together, ``package`` for every module, ``file`` for
any one source file (``file-exceptions`` lists files over it, each with a budget of its own,
until they are split).
"""
import pathlib
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
budget = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mibun"]["line-budget"]
src = root / "src" / "mibun"


def lines(path):
    return len(path.read_text().splitlines())


files = sorted(src.rglob("*.py"))
counts = {
    "core": lines(src / "core.py"),
    "functions": sum(lines(p) for p in (src / "functions").glob("*.py")),
    "package": sum(lines(p) for p in files),
}
over = [f"{name}: {n} lines > {budget[name]}" for name, n in counts.items() if n > budget[name]]
exceptions = budget.get("file-exceptions", {})
for p in files:
    rel = str(p.relative_to(src))
    limit = exceptions.get(rel, budget["file"])
    if lines(p) > limit:
        over.append(f"{rel}: {lines(p)} lines > {limit}")
for name, n in counts.items():
    print(f"lines: {name} {n} (budget {budget[name]})")
biggest = max(files, key=lines)
print(f"lines: largest file {biggest.relative_to(src)} {lines(biggest)} (budget {budget['file']}"
      f"{', with ' + str(len(exceptions)) + ' listed exceptions' if exceptions else ''})")
if over:
    print("over budget:\n  " + "\n  ".join(over))
    sys.exit(1)
