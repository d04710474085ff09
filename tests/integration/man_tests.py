"""Man pages: batond(8), batonctl(1), baton.ini(5), libbaton(3).

Every test is named man_* (run them alone with `run.py -k man_`).  The pages
must render without a single groff warning, and must not drift from the
code: the KEYS block of baton.ini(5) is byte for byte what
`batond --config-reference=man` prints, batonctl(1) documents every command
and option batonctl's own help lists, batond(8) every option and signal of
`batond -h`, libbaton(3) every name in worker/baton.h, and the example
programs and configuration in the pages build and run.

After a change to the key table in supervisor/config_keys.c, regenerate the KEYS
block with

    python3 tests/integration/man_tests.py --update

(it uses $BATON_BIN/batond, bin/batond by default).  Without --update this
file runs the man_* tests.
"""
import difflib
import os
import re
import shutil
import socket
import subprocess
import sys

from harness import Batond, bin_path, ROOT, test

PAGES = {
    "batond.8": os.path.join(ROOT, "supervisor", "man", "batond.8"),
    "batonctl.1": os.path.join(ROOT, "supervisor", "man", "batonctl.1"),
    "baton.ini.5": os.path.join(ROOT, "supervisor", "man", "baton.ini.5"),
    "libbaton.3": os.path.join(ROOT, "worker", "libbaton.3"),
}
REF_START = b'.\\" config-reference:start\n'
REF_END = b'.\\" config-reference:end\n'
UPDATE_HINT = "regenerate it with: python3 tests/integration/man_tests.py --update"


# ---------------------------------------------------------------- helpers

def read(page):
    with open(PAGES[page], encoding="utf-8") as f:
        return f.read()


def groff(path, device, to_text=False):
    """groff -ww -man -T<device> [-z] path: (exit code, stdout, stderr)."""
    cmd = ["groff", "-ww", "-man", "-T" + device]
    if not to_text:
        cmd.append("-z")
    r = subprocess.run([*cmd, path], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LC_ALL": "C.UTF-8"})
    return r.returncode, r.stdout, r.stderr


def render_problems(path):
    """What is wrong with rendering path: a list of messages, empty if none."""
    problems = []
    for device, to_text in (("utf8", False), ("ascii", True)):
        rc, out, err = groff(path, device, to_text)
        if rc != 0 or err:
            problems.append(f"groff -ww -man -T{device}{'' if to_text else ' -z'} "
                            f"exit {rc}:\n{err}")
        if to_text and rc == 0 and "NAME" not in re.sub(r".\x08", "", out):  # no overstrikes
            problems.append(f"groff -T{device}: no NAME section in the text")
    return problems


def lint(path):
    """Source problems groff does not warn about: trailing white space, a
    blank line or a line starting with ' in fill mode, a .TH that does not
    match the file name."""
    problems = []
    name, section = os.path.basename(path).rsplit(".", 1)
    nofill = False
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        where = f"{os.path.basename(path)}:{i}"
        if line != line.rstrip():
            problems.append(f"{where}: trailing white space")
        if re.search(r"[\x00-\x1f\x7f]", line):
            problems.append(f"{where}: control character {line!r}")
        if re.match(r"^\.(EX|nf)\b", line):
            nofill = True
        elif re.match(r"^\.(EE|fi)\b", line):
            nofill = False
        if line == "" and not nofill and i < len(lines):
            problems.append(f"{where}: blank line (use .PP)")
        if line.startswith("'"):
            problems.append(f"{where}: line starts with ' (a control line): use \\&'")
        if line.startswith(".") and not re.match(r"^\.(\\\"|[A-Za-z]{1,3}(\s|$))", line):
            problems.append(f"{where}: line starts with '.' but is no macro: use \\&.")
    th = [ln for ln in lines if ln.startswith(".TH ")]
    if not th or th[0].split()[1:3] != [name.upper(), section]:
        problems.append(f"{os.path.basename(path)}: .TH should be '.TH {name.upper()} {section} ...'")
    return problems


def ref_block(text):
    """The bytes between the config-reference markers of baton.ini(5)."""
    assert text.count(REF_START) == 1 and text.count(REF_END) == 1, \
        "baton.ini.5 needs exactly one pair of config-reference markers"
    start = text.index(REF_START) + len(REF_START)
    end = text.index(REF_END)
    assert start <= end, "config-reference:end comes before config-reference:start"
    return text[start:end]


def config_reference_man():
    r = subprocess.run([bin_path("batond"), "--config-reference=man"], capture_output=True,
                       timeout=30)
    assert r.returncode == 0 and not r.stderr, (r.returncode, r.stderr)
    assert r.stdout.endswith(b"\n"), "config reference does not end with a newline"
    return r.stdout


def roff_escaped(s):
    """How s (an option or word) is written in roff source: hyphens as \\-."""
    return s.replace("-", "\\-")


def section(text, title):
    """The source of one .SH section (up to the next .SH)."""
    m = re.search(r'^\.SH "?%s"?\n(.*?)(?=^\.SH |\Z)' % re.escape(title), text, re.M | re.S)
    assert m, f"no .SH {title} section"
    return m.group(1)


def tagged(text, word):
    """Is word the first word of a .TP tag (the line after a .TP)?"""
    rx = r'^\.TP[^\n]*\n\.(?:B|BR|BI|I|IR|IB)\s+"?%s(?:[\s"\\]|$)' % re.escape(roff_escaped(word))
    return re.search(rx, text, re.M) is not None


def unroff(line):
    """A line of an .EX block as plain text (the escapes the pages use)."""
    table = {"\\-": "-", "\\e": "\\", "\\(aq": "'", "\\(dq": '"', "\\&": "",
             "\\fB": "", "\\fI": "", "\\fR": "", "\\fP": ""}
    return re.sub(r"\\(\(..|f[BIRP]|[-e&])", lambda m: table[m.group(0)], line)


def examples(text):
    """The .EX ... .EE blocks of a page, as plain text."""
    return ["\n".join(unroff(ln) for ln in block.split("\n")) + "\n"
            for block in re.findall(r"^\.EX\n(.*?)\n\.EE$", text, re.M | re.S)]


def update():
    """Rewrite the KEYS block of baton.ini(5) from batond --config-reference=man."""
    path = PAGES["baton.ini.5"]
    with open(path, "rb") as f:
        text = f.read()
    old = ref_block(text)
    new = config_reference_man()
    start = text.index(REF_START) + len(REF_START)
    text = text[:start] + new + text[start + len(old):]
    with open(path, "wb") as f:
        f.write(text)
    print(f"{path}: KEYS block {'unchanged' if old == new else 'updated'} "
          f"({len(new.splitlines())} lines from {bin_path('batond')})")


# ---------------------------------------------------------------- tests

@test
def man_pages_render_without_warnings(td):
    """groff -ww renders every page with no warning, and the check works:
    a page with an unknown macro and a bad escape does not pass."""
    broken = td.file("broken.1", ".TH BROKEN 1\n.SH NAME\nbroken \\- a page\n.SH DESCRIPTION\n"
                                 ".XY unknown macro\nbad \\q escape\n")
    assert render_problems(broken), "groff -ww did not catch a broken page"
    assert len(lint(td.file("lint.1", ".TH LINT 1 \n.SH NAME\n\nlint \\- a\fpage\n'quote\n.5 dot\n"))) == 5, \
        "the lint did not catch a bad page"
    problems = []
    for page, path in PAGES.items():
        assert os.path.exists(path), f"missing {path}"
        problems += render_problems(path) + lint(path)
    assert not problems, "\n".join(problems)


@test
def man_ini_keys_match_config_reference(td):
    """The KEYS block of baton.ini(5) is batond --config-reference=man, byte
    for byte (so every key of the config table is documented)."""
    with open(PAGES["baton.ini.5"], "rb") as f:
        block = ref_block(f.read())
    ref = config_reference_man()
    if block != ref:
        diff = "".join(difflib.unified_diff(
            block.decode().splitlines(True), ref.decode().splitlines(True),
            "baton.ini.5 KEYS block", "batond --config-reference=man"))
        raise AssertionError(f"baton.ini.5 KEYS block is out of date; {UPDATE_HINT}\n{diff}")
    # The markers sit in the KEYS section, and every key is in it.
    keys = section(read("baton.ini.5"), "KEYS")
    for key in re.findall(rb"^\.BR (\S+) ", ref, re.M):
        assert f".BR {key.decode()} " in keys, key


@test
def man_batonctl_documents_every_command_and_option(td):
    """batonctl(1) has a .TP entry for every command of `batonctl help`,
    every option of `batonctl -h` and every exit status it lists."""
    r = subprocess.run([bin_path("batonctl"), "help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    page = read("batonctl.1")
    commands = section(page, "COMMANDS")
    usage = r.stdout.split("\nCommands:\n", 1)
    assert len(usage) == 2, r.stdout
    listed = re.findall(r"^  ([a-z]+)((?: \S+)*?) {2,}\S", usage[1], re.M)
    assert len(listed) >= 10, f"parsed only {listed} from batonctl help"
    missing = []
    for name, args in listed:
        if not tagged(commands, name):
            missing.append(f"command {name}")
        tag = re.search(r'^\.TP[^\n]*\n(\.(?:B|BR|BI) +"?%s\b.*)$' % name, commands, re.M)
        for word in re.findall(r"--[a-z][a-z-]*", args):  # upgrade [--abort], reload [--dry-run]
            if not tag or roff_escaped(word) not in tag.group(1):
                missing.append(f"{name} {word} (in its .TP tag)")
    options = section(page, "OPTIONS")
    for opt in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage[0].split("\n\n", 1)[1]):
        if roff_escaped(opt) not in options:
            missing.append(f"option {opt}")
    exits = section(page, "EXIT STATUS")
    codes = re.findall(r"\b(\d) [a-z]", r.stdout.split("Exit status:", 1)[1])
    assert codes == ["0", "1", "2", "3", "4"], codes
    for code in codes:
        if not re.search(r"^\.TP\n\.B %s\n" % code, exits, re.M):
            missing.append(f"exit status {code}")
    if "BATON_SOCKET" in r.stdout and not tagged(section(page, "ENVIRONMENT"), "BATON_SOCKET"):
        missing.append("environment BATON_SOCKET")
    assert not missing, "batonctl.1 does not document: " + ", ".join(missing)


@test
def man_batond_documents_every_option_and_signal(td):
    """batond(8) documents every option and signal `batond -h` lists, and its
    default configuration file."""
    r = subprocess.run([bin_path("batond"), "-h"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    page = read("batond.8")
    options = section(page, "OPTIONS")
    body, _, sigs = r.stdout.partition("\nSignals:")
    assert sigs, r.stdout
    longs = re.findall(r"(?<![\w-])--([a-z][a-z-]*)", body)
    shorts = re.findall(r"^\s+-([A-Za-z]),", body, re.M)
    assert len(longs) >= 6 and len(shorts) >= 5, (longs, shorts)
    missing = [f"--{o}" for o in longs if roff_escaped("--" + o) not in options]
    missing += [f"-{o}" for o in shorts if roff_escaped("-" + o) not in options]
    signals = section(page, "SIGNALS")
    names = re.findall(r"\b([A-Z][A-Z0-9]+)\b", sigs)
    assert len(names) >= 5, names
    missing += [f"SIG{n}" for n in names if f"SIG{n}" not in signals]
    default = re.search(r"\(default (/\S+)\)", body).group(1)
    if default not in section(page, "FILES"):
        missing.append(f"FILES {default}")
    for env in ("BATON_FD", "BATON_PROGRAM", "BATON_WORKER", "BATON_GENERATION"):
        if not tagged(section(page, "WORKER ENVIRONMENT"), env):
            missing.append(env)
    assert not missing, "batond.8 does not document: " + ", ".join(missing)


@test
def man_libbaton_documents_baton_h(td):
    """libbaton(3) names every function, macro and struct field of
    worker/baton.h in its NAME and SYNOPSIS, and describes every function."""
    with open(os.path.join(ROOT, "worker", "baton.h")) as f:
        header = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    page = read("libbaton.3")
    name = section(page, "NAME")
    synopsis = section(page, "SYNOPSIS")
    described = section(page, "DESCRIPTION")
    functions = re.findall(r"\b(baton_\w+)\s*\(", header)
    assert len(functions) >= 12, functions
    missing = []
    for fn in functions:
        if fn not in name:
            missing.append(f"{fn} in NAME")
        if not re.search(r"\b%s\(" % fn, unroff(synopsis).replace('"', "")):
            missing.append(f"{fn} in SYNOPSIS")
        if not re.search(r'^\.BR? .*\b%s "?\(\)' % fn, described, re.M):
            missing.append(f"{fn} described")
    for macro in re.findall(r"#define (BATON_\w+)", header):
        if macro == "BATON_H":
            continue
        if macro not in synopsis or macro not in described:
            missing.append(macro)
    for struct in re.findall(r"struct (baton_\w+) \{(.*?)\};", header, re.S):
        for field in re.findall(r"(\w+)\s*(?:\)\s*\(.*?\))?;", struct[1]):
            if not re.search(r"\b%s\b" % field, synopsis):
                missing.append(f"struct {struct[0]} field {field}")
    assert not missing, "libbaton.3 does not document: " + ", ".join(missing)


@test
def man_libbaton_examples_build_and_serve(td):
    """The example workers of libbaton(3) compile with -Wall -Werror, serve a
    client each under a real batond, and exit 0 when batond shuts down."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
    assert cc, "no C compiler"
    programs = [e for e in examples(read("libbaton.3")) if "int main" in e]
    assert len(programs) == 2, f"expected the libevent and the poll example, got {len(programs)}"
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent"], capture_output=True,
                        text=True)
    evflags = pc.stdout.split() if pc.returncode == 0 else ["-levent"]
    sources = [os.path.join(ROOT, "worker", "baton.c")] + sorted(
        os.path.join(ROOT, "common", f) for f in os.listdir(os.path.join(ROOT, "common"))
        if f.endswith(".c"))
    # The library once, then each example against it, as the page says.
    objs = []
    for src in sources:
        obj = os.path.join(td.path, os.path.basename(src)[:-2] + ".o")
        r = subprocess.run([cc, "-std=gnu11", "-D_GNU_SOURCE", "-O1", "-I" + os.path.join(ROOT, "common"),
                            "-I" + os.path.join(ROOT, "worker"), *[f for f in evflags if f.startswith("-I")],
                            "-c", src, "-o", obj], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    lib = os.path.join(td.path, "libbaton.a")
    subprocess.run(["ar", "rcs", lib, *objs], check=True, timeout=60)
    exes = []
    for i, prog in enumerate(programs):
        src = td.file(f"example{i}.c", prog)
        exe = os.path.join(td.path, f"example{i}")
        r = subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                            "-I" + os.path.join(ROOT, "worker"), "-o", exe, src, lib, *evflags],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"example {i} of libbaton.3 does not build:\n{r.stderr}\n{prog}"
        exes.append(exe)

    config = "[baton]\nlog_level = info\n"
    for i, exe in enumerate(exes):
        config += (f"\n[listener:l{i}]\naddress = tcp:127.0.0.1:0\nprogram = hello{i}\n"
                   f"\n[program:hello{i}]\ncommand = {exe}\nworkers = 2\nready_timeout = 5s\n"
                   "drain_timeout = 5s\nstop_timeout = 2s\nheartbeat_timeout = 3s\n")
    b = Batond(td, config, wait_ready=2 * len(exes))
    for i in range(len(exes)):
        port = b.port(f"l{i}")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if i == 0:
                assert re.fullmatch(rb"hello 127\.0\.0\.1:\d+ from hello0\n", data), data
            else:
                assert data == b"hello\n", data
    assert "worker exited" not in b.log(), b.tail()
    assert b.stop() == 0, b.tail()
    exits = re.findall(r"worker exited program=hello\d slot=\d pid=\d+ (\S+)", b.log())
    assert exits == ["exit=0"] * (2 * len(exes)), (exits, b.tail())


@test
def man_ini_example_is_valid(td):
    """The EXAMPLES configuration of baton.ini(5) passes batond -t, but for
    users and groups this machine may not have."""
    ex = [e for e in examples(section(read("baton.ini.5"), "EXAMPLES")) if "[program:" in e]
    assert len(ex) == 1, ex
    path = td.file("example.ini", ex[0])
    r = subprocess.run([bin_path("batond"), "-t", "-c", path], capture_output=True, text=True,
                       timeout=30)
    errors = [ln for ln in r.stderr.splitlines() if not ln.endswith(("error", "errors"))]
    bad = [ln for ln in errors if not re.search(r"no such (user|group) '", ln)]
    assert not bad and (r.returncode == 0) == (not errors), (r.returncode, r.stdout, r.stderr)


@test
def man_pages_render_with_man(td):
    """man -l --warnings -E UTF-8 PAGE renders each page with nothing on
    stderr (skipped without man)."""
    if not shutil.which("man"):
        print("     (no man command: man -l not checked)")
        return
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80",
           "LC_ALL": "C.UTF-8", "MAN_KEEP_STDERR": "1"}

    def man(path):
        return subprocess.run(["man", "-l", "--warnings", "-E", "UTF-8", path],
                              capture_output=True, text=True, env=env, timeout=60)

    broken = td.file("broken.1", ".TH BROKEN 1\n.SH NAME\nbroken \\- a page\n.XY unknown macro\n")
    assert man(broken).stderr, "man -l --warnings did not catch a broken page"
    problems = []
    for page, path in PAGES.items():
        r = man(path)
        if r.returncode != 0 or r.stderr or "NAME" not in r.stdout:
            problems.append(f"man -l {page}: exit {r.returncode}\n{r.stderr}")
    assert not problems, "\n".join(problems)


if __name__ == "__main__":
    if "--update" in sys.argv:
        update()
        sys.exit(0)
    import run  # noqa: E402  (the runner, with every test module)
    sys.argv = [sys.argv[0], "-k", "man_"]
    sys.exit(run.main())
