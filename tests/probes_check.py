#!/usr/bin/env python3
"""An independent check of `recur data probes` (docs/lm.md, "Generated probes").

Runs the generator at its defaults, then re-derives every test target (and every solved training example) from the
text alone: biographies are parsed with this file's own copy of the sentence templates (closed-book answers from the
training text's biographies, open-book answers from the context), i-GSM word problems are parsed and evaluated mod 7,
and primitives are executed. Fails on any mismatch, on an item longer than 256 bytes, on a test item that occurs in
the training text, or on an open-book test person named in the training text.

usage: probes_check.py RECUR_BINARY WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

TEMPLATES = {
    "birth_date": ["{n} was born on {v}.", "{n} came into the world on {v}.", "{n}'s birth date is {v}.",
                   "The birthday of {n} is {v}."],
    "birth_city": ["{n} was born in {v}.", "{n} is a native of {v}.", "{n}'s birthplace is {v}.",
                   "{n} comes from {v}."],
    "university": ["{n} studied at {v}.", "{n} graduated from {v}.", "{n} attended {v}.",
                   "{n} earned a degree at {v}."],
    "field": ["{n} majored in {v}.", "{n} focused on {v}.", "{n}'s field is {v}.", "{n} has a degree in {v}."],
    "employer": ["{n} works for {v}.", "{n} is employed by {v}.", "{n}'s employer is {v}.", "{n} has a job at {v}."],
    "work_city": ["{n} works in {v}.", "{n} is based in {v}.", "{n}'s office is in {v}.",
                  "{n} commutes to work in {v}."],
}
QUESTIONS = {
    "birth_date": "When was {n} born?", "birth_city": "Where was {n} born?",
    "university": "Which university did {n} attend?", "field": "What did {n} study?",
    "employer": "Which company does {n} work for?", "work_city": "In which city does {n} work?",
}
NAME = r"(?P<n>[A-Z][a-z]+ [A-Z][a-z]+)"
VALUE = r"(?P<v>[A-Za-z][A-Za-z0-9 ,]*)"


def pattern(template, value=VALUE):
    parts = re.split(r"(\{n\}|\{v\})", template)
    body = "".join(NAME if p == "{n}" else value if p == "{v}" else re.escape(p) for p in parts)
    return re.compile("^" + body + "$")


SENTENCES = [(attr, pattern(t)) for attr, ts in TEMPLATES.items() for t in ts]
QUESTION_LINES = [(attr, pattern("Q: " + q)) for attr, q in QUESTIONS.items()]


def fail(message):
    print("probes_check: FAIL: " + message)
    sys.exit(1)


def add_facts(lines, facts):
    """Parses biography sentences into facts[name][attribute] = {values}; returns how many lines were facts."""
    parsed = 0
    for line in lines:
        matches = [(attr, m) for attr, p in SENTENCES if (m := p.match(line))]
        if len(matches) > 1:
            fail(f"biography line {line!r} matches {len(matches)} templates")
        if matches:
            attr, m = matches[0]
            facts.setdefault(m["n"], {}).setdefault(attr, set()).add(m["v"])
            parsed += 1
    return parsed


def parse_question(line):
    for attr, p in QUESTION_LINES:
        m = p.match(line)
        if m:
            return attr, m["n"]
    fail(f"not a question line: {line!r}")


def answer_from(facts, name, attr, where):
    values = facts.get(name, {}).get(attr)
    if not values or len(values) != 1:
        fail(f"{where}: {name}'s {attr} is {values} in the biographies (want exactly one value)")
    return next(iter(values))


def solve_qa(context, facts, where):
    lines = context.split("\n")
    if lines[-1] != "A:":
        fail(f"{where}: the context does not end with 'A:'")
    attr, name = parse_question(lines[-2])
    return " " + answer_from(facts, name, attr, where)


TERM = re.compile(r"^([A-Z])'s ([A-Z])$")


def igsm_solve(context, where):
    """Evaluates the word problem mod 7: each parameter (X, Y) is a constant or an expression of others."""
    lines = context.split("\n")
    m = re.match(r"^How many ([A-Z]) does each ([A-Z]) have\? Answer:$", lines[-1])
    if not m:
        fail(f"{where}: bad i-GSM question line {lines[-1]!r}")
    query = (m[2], m[1])
    definitions = {}
    for line in lines[:-1]:
        c = re.match(r"^Each ([A-Z]) has ([0-6]) ([A-Z])\.$", line)
        e = re.match(r"^Each ([A-Z]) has as many ([A-Z]) as (.+)\.$", line)
        if c:
            definitions[(c[1], c[3])] = [c[2]]
        elif e:
            words = e[3].split(" ")
            terms, i = [], 0
            while i < len(words):
                if words[i] in ("plus", "minus", "times") or re.match(r"^[0-6]$", words[i]):
                    terms.append(words[i])
                    i += 1
                else:
                    t = TERM.match(words[i] + " " + (words[i + 1] if i + 1 < len(words) else ""))
                    if not t:
                        fail(f"{where}: bad term at {words[i:]!r} in {line!r}")
                    terms.append((t[1][0], t[2]))
                    i += 2
            definitions[(e[1], e[2])] = terms
        else:
            fail(f"{where}: bad i-GSM sentence {line!r}")
    values = {}

    def value(param, depth=0):
        if param in values:
            return values[param]
        if param not in definitions or depth > 100:
            fail(f"{where}: {param} is undefined or cyclic")
        terms = [value(t, depth + 1) if isinstance(t, tuple) else t for t in definitions[param]]
        expr = " ".join({"plus": "+", "minus": "-", "times": "*"}.get(str(t), str(t)) for t in terms)
        values[param] = eval(expr) % 7  # digits and + - * only, built above
        return values[param]

    return " " + str(value(query))


def primitives_solve(context, where):
    """Executes `a=1, b=a, b=?` or `a = 1; b = a; print(b)`; returns (answer, depth of the queried chain)."""
    code = context.endswith(")")
    statements = context.split("; " if code else ", ")
    query = statements.pop()
    q = re.match(r"^print\(([a-z])\)$", query) if code else re.match(r"^([a-z])=\?$", query)
    if not q:
        fail(f"{where}: bad query {query!r}")
    env, depth = {}, {}
    for s in statements:
        m = re.match(r"^([a-z]) = ([a-z0-9])$" if code else r"^([a-z])=([a-z0-9])$", s)
        if not m:
            fail(f"{where}: bad statement {s!r}")
        if m[2].isdigit():
            env[m[1]], depth[m[1]] = m[2], 0
        elif m[2] in env:
            env[m[1]], depth[m[1]] = env[m[2]], depth[m[2]] + 1
        else:
            fail(f"{where}: {m[2]} read before assignment")
    if q[1] not in env:
        fail(f"{where}: the query reads an unassigned variable")
    return " " + env[q[1]], depth[q[1]]


def split_worked(doc, marker):
    """A solved training document as (context, target): the target follows the last `marker`."""
    cut = doc.rindex(marker) + len(marker)
    return doc[:cut], doc[cut:]


def check_task_items(out, summary, train_text, facts):
    solvers = {
        "closed_book_qa": lambda c, w: solve_qa(c, facts, w),
        "open_book_qa": lambda c, w: solve_qa(c, add_facts_local(c), w),
        "igsm": igsm_solve,
    }
    for name, info in summary["tasks"].items():
        lines = open(os.path.join(out, info["file"]), encoding="utf-8").read().splitlines()
        if len(lines) != info["items"] or not lines:
            fail(f"{name}: {len(lines)} lines but probes.json says {info['items']}")
        for k, line in enumerate(lines):
            where = f"{info['file']} line {k + 1}"
            item = json.loads(line)
            context, target = item["context"], item["target"]
            if item.get("until") != ["\n"] or not target.startswith(" "):
                fail(f"{where}: until must be ['\\n'] and the target must start with a space")
            if len((context + target).encode("utf-8")) > 256:
                fail(f"{where}: context + target is longer than 256 bytes")
            if context + target in train_text:
                fail(f"{where}: the test item occurs in the training text")
            if name.startswith("primitives_"):
                got, depth = primitives_solve(context, where)
                if depth != int(name[-1]):
                    fail(f"{where}: queried chain has depth {depth}, file says {name[-1]}")
            else:
                got = solvers[name](context, where)
            if got != target:
                fail(f"{where}: solver says {got!r}, target is {target!r}")


def add_facts_local(context):
    facts = {}
    add_facts(context.split("\n"), facts)
    return facts


def check_people(out, summary, train, facts):
    closed = [json.loads(l)["context"] for l in open(os.path.join(out, "tasks/closed_book_qa.jsonl"))]
    trained_questions = set(train["qa_closed"].split("\n"))
    for context in closed:
        question = context.split("\n")[0]
        if question in trained_questions:
            fail(f"closed-book test question {question!r} is in the training QA")
        _, name = parse_question(question)
        if name in train["qa_closed"]:
            fail(f"closed-book test person {name} has worked QA in the training text")
    all_train = "".join(train.values())
    for line in open(os.path.join(out, "tasks/open_book_qa.jsonl")):
        _, name = parse_question(json.loads(line)["context"].split("\n")[-2])
        if name in all_train:
            fail(f"open-book test person {name} occurs in the training text")


def check_worked_examples(train, facts):
    """Every solved training example agrees with the independent solvers."""
    for doc in train["igsm"].split("\n\n"):
        context, target = split_worked(doc.strip("\n"), "Answer:")
        if igsm_solve(context, "train/igsm.txt") != target:
            fail(f"train/igsm.txt: wrong answer in {doc!r}")
    for doc in train["primitives"].split("\n\n"):
        doc = doc.strip("\n")
        context, target = doc[:doc.rindex(" ")], doc[doc.rindex(" "):]
        if primitives_solve(context, "train/primitives.txt")[0] != target:
            fail(f"train/primitives.txt: wrong answer in {doc!r}")
    for doc in train["qa_closed"].split("\n\n"):
        lines = doc.strip("\n").split("\n")
        for q, a in zip(lines[0::2], lines[1::2]):
            attr, name = parse_question(q)
            if a != "A: " + answer_from(facts, name, attr, "train/qa_closed.txt"):
                fail(f"train/qa_closed.txt: {q!r} answered {a!r}")


def main():
    recur, work = sys.argv[1], sys.argv[2]
    out = os.path.join(work, "probes")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([recur, "--threads", "1", "data", "probes", "--out", out], check=True)
    summary = json.load(open(os.path.join(out, "probes.json")))
    train = {kind: open(os.path.join(out, info["file"]), encoding="utf-8").read()
             for kind, info in summary["train"].items()}
    facts = {}
    bio_lines = train["bios"].split("\n")
    if add_facts(bio_lines, facts) != sum(1 for l in bio_lines if l):
        fail("train/bios.txt has lines that are not biography sentences")
    check_task_items(out, summary, "\n\n".join(train.values()), facts)
    check_people(out, summary, train, facts)
    check_worked_examples(train, facts)
    items = sum(t["items"] for t in summary["tasks"].values())
    print(f"probes_check: OK: {items} test items in {len(summary['tasks'])} files re-derived; "
          f"{len(facts)} people in the biographies")


if __name__ == "__main__":
    main()
