"""Check the real az CLI against skiff's Azure Files data plane, by hand (as root).

Run: ``AZ=/path/to/az python3 scripts/az_files_check.py`` with azure-cli installed (for
example in a venv: ``python3 -m venv /tmp/azvenv && /tmp/azvenv/bin/pip install azure-cli``).
It serves a skiff on a temporary data root, makes a storage account through ARM, and drives
``az storage share|directory|file`` with a connection string, printing each exit code. The
next step is making it a CI test with a pinned azure-cli."""
import os, subprocess, sys, tempfile
from pathlib import Path
from skiff.testing.server import running_server

AZ = os.environ.get("AZ", "/tmp/azvenv/bin/az")
RG = "/subscriptions/sub-1/resourceGroups/rg"
ACC = f"{RG}/providers/Microsoft.Storage/storageAccounts/aztry1"
API = "?api-version=2023-05-01"
with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "root", files=True) as s:
    with s.client() as http:
        r = http.put(f"{ACC}{API}", json={"location": "local", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
        print("account", r.status_code)
        key = http.post(f"{ACC}/listKeys{API}").json()["keys"][0]["value"]
        ep = http.get(f"{ACC}{API}").json()["properties"]["primaryEndpoints"]["file"]
    conn = f"DefaultEndpointsProtocol=https;AccountName=aztry1;AccountKey={key};FileEndpoint={ep.rstrip('/')}"
    env = dict(os.environ, REQUESTS_CA_BUNDLE=str(s.ca), AZURE_CORE_COLLECT_TELEMETRY="no",
               AZURE_CONFIG_DIR=str(Path(tmp) / "az"))
    src = Path(tmp) / "a.txt"; src.write_text("hello from az\n")
    for args in (["storage", "share", "create", "-n", "data", "--quota", "1"],
                 ["storage", "share", "list"],
                 ["storage", "share", "show", "-n", "data"],
                 ["storage", "share", "update", "-n", "data", "--quota", "2"],
                 ["storage", "directory", "create", "-s", "data", "-n", "in"],
                 ["storage", "file", "upload", "-s", "data", "--source", str(src), "--path", "in/a.txt"],
                 ["storage", "file", "list", "-s", "data", "-p", "in"],
                 ["storage", "file", "show", "-s", "data", "-p", "in/a.txt"],
                 ["storage", "file", "download", "-s", "data", "-p", "in/a.txt", "--dest", str(Path(tmp) / "b.txt")],
                 ["storage", "file", "metadata", "update", "-s", "data", "-p", "in/a.txt", "--metadata", "k=v"],
                 ["storage", "file", "delete", "-s", "data", "-p", "in/a.txt"],
                 ["storage", "directory", "delete", "-s", "data", "-n", "in"],
                 ["storage", "share", "delete", "-n", "data"]):
        done = subprocess.run([AZ, *args, "--connection-string", conn, "-o", "json"], env=env,
                              capture_output=True, text=True)
        print("$ az", " ".join(args[:3]), "->", done.returncode, (done.stdout.strip()[:150].replace("\n", " ") if done.returncode == 0 else done.stderr.strip()[-400:]))
    print("downloaded:", (Path(tmp) / "b.txt").read_text() if (Path(tmp) / "b.txt").exists() else None)
