"""Write the labelled PII set ``tests/data/guardrails/pii.jsonl``: texts with gold spans per entity type.

Each line is ``{"id", "text", "spans": [{"start", "end", "entity"}], "kind"}``; ``kind`` is
``positive`` (at least one span) or ``negative`` (a lookalike that is not PII: a card number
failing the Luhn check, an IBAN with wrong check digits, a version string, an order number…).
Values are made up but valid by their own rules: cards pass Luhn, IBANs carry correct mod-97
check digits, SSNs follow the SSA's rules, phone numbers are valid for their region according to
``phonenumbers``. The sentences imitate support tickets, CRM notes, logs, forms, JSON and CSV.
Seeded: the same command writes the same file.

    python scripts/make_pii_set.py                 # writes tests/data/guardrails/pii.jsonl
    python scripts/make_pii_set.py --out /tmp/p.jsonl --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers

ROOT = Path(__file__).resolve().parent.parent

FIRST = ["ana", "bob", "chen", "dmitri", "eva", "farah", "giulia", "hiro", "ines", "jamal", "kate", "lars", "maria"]
LAST = ["lopez", "smith", "wang", "ivanov", "muller", "khan", "rossi", "tanaka", "silva", "okafor", "berg", "novak"]
DOMAINS = [
    "example.com",
    "example.org",
    "mail.example.co.uk",
    "acme-corp.com",
    "uni-heidelberg.de",
    "cs.stanford.edu",
    "gmail.com",
    "outlook.fr",
    "company.io",
    "support.shop.example.net",
    "yahoo.co.jp",
    "posteo.de",
]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return digits + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{rng.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}_{last}",
            f"{first}+{rng.choice(['news', 'billing', 'test'])}",
            f"{last}-{first}",
            f"{first.capitalize()}.{last.capitalize()}",
        ]
    )
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.upper() if rng.random() < 0.05 else address


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    if kind == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        sep = rng.choice([" ", "-", ""])
        return sep.join([number[:4], number[4:10], number[10:]])
    prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "mc2": str(rng.randint(2221, 2720)), "discover": "6011"}
    number = luhn_complete(prefix[kind], 16, rng)
    sep = rng.choice([" ", "-", "", " "])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


IBAN_FORMATS = {  # country: BBAN made of (kind, length) parts; n digits, a upper-case letters, c alphanumerics
    "GB": [("a", 4), ("n", 14)],
    "DE": [("n", 18)],
    "FR": [("n", 10), ("c", 11), ("n", 2)],
    "ES": [("n", 20)],
    "NL": [("a", 4), ("n", 10)],
    "IT": [("a", 1), ("n", 10), ("c", 12)],
    "BE": [("n", 12)],
    "CH": [("n", 5), ("c", 12)],
    "IE": [("a", 4), ("n", 14)],
    "PL": [("n", 24)],
    "AT": [("n", 16)],
    "PT": [("n", 21)],
}


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(list(IBAN_FORMATS))
    pools = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
    bban = "".join("".join(rng.choice(pools[k]) for _ in range(n)) for k, n in IBAN_FORMATS[country])
    rearranged = bban + country + "00"
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    check = 98 - int(numeric) % 97
    if not valid:
        check = rng.choice([c for c in range(2, 99) if c != check])
    code = f"{country}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
    return code


def ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 8, 34, 52, 81, 185, 203, 100])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    style = rng.choice(["full", "compressed", "doc", "mapped"])
    if style == "mapped":
        return f"::ffff:{ipv4(rng)}"
    if style == "full":
        return ":".join(groups)
    if style == "compressed":
        return ":".join(groups[:3]) + "::" + ":".join(groups[6:])
    return f"2001:db8::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    sep = rng.choice(["-", "-", "-", " ", ""])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if prefix not in {"BG", "GB", "NK", "KN", "NT", "TN", "ZZ"}:
            break
    digits = f"{rng.randint(0, 999999):06d}"
    suffix = rng.choice("ABCD")
    text = (
        f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
        if rng.random() < 0.5
        else f"{prefix}{digits}{suffix}"
    )
    return text.lower() if rng.random() < 0.15 else text


PHONE_REGIONS = {  # region: (national number length, leading digits to try)
    "US": (10, ["212", "312", "415", "617", "646", "702", "213", "305", "512", "206"]),
    "CA": (10, ["416", "604", "514", "403"]),
    "GB": (10, ["20", "161", "7700", "7911", "131"]),
    "DE": (10, ["30", "89", "40", "151", "170"]),
    "FR": (9, ["1", "6", "7", "4"]),
    "IN": (10, ["98", "99", "80", "70"]),
    "BR": (11, ["11", "21"]),
    "AU": (9, ["2", "3", "4"]),
    "ES": (9, ["91", "93", "6"]),
    "IT": (10, ["02", "06", "3"]),
}


def phone(rng: random.Random) -> str:
    while True:
        region = rng.choice(list(PHONE_REGIONS))
        length, leads = PHONE_REGIONS[region]
        lead = rng.choice(leads)
        national = lead + "".join(rng.choice(string.digits) for _ in range(length - len(lead)))
        try:
            number = phonenumbers.parse(national, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        # national formats only where the detector's default regions read them; others with +country
        styles = ["intl", "e164"] + (
            ["national", "national"] if region in {"US", "CA", "GB", "DE", "FR", "IN", "BR"} else []
        )
        style = rng.choice(styles)
        if style == "e164":
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if style == "intl":
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            return text.replace(" ", "-") if region in {"US", "CA"} and rng.random() < 0.4 else text
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if region in {"US", "CA"} and rng.random() < 0.6:
            d = national
            text = rng.choice(
                [
                    f"{d[:3]}-{d[3:6]}-{d[6:]}",
                    f"{d[:3]}.{d[3:6]}.{d[6:]}",
                    f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}",
                    f"1-{d[:3]}-{d[3:6]}-{d[6:]}",
                ]
            )
        elif region == "GB" and rng.random() < 0.3:
            text = "+44 (0)" + text[1:]
        return text


VALUES: dict[str, Callable[[random.Random], str]] = {
    "EMAIL_ADDRESS": email,
    "PHONE_NUMBER": phone,
    "CREDIT_CARD": card,
    "IBAN_CODE": iban,
    "IP_ADDRESS": lambda rng: ipv4(rng) if rng.random() < 0.7 else ipv6(rng),
    "US_SSN": ssn,
    "UK_NINO": nino,
}

TEMPLATES: dict[str, list[str]] = {
    "EMAIL_ADDRESS": [
        "Please send the invoice to {} by Friday.",
        "Contact: {}",
        "From: {}\nSubject: refund for order 48213",
        "my email is {} and I never got the reset link",
        'user = {"id": 8812, "email": "{}", "plan": "pro"}',
        "cc {} on the thread, she owns the migration",
        "Reply-To: <{}>",
        "{},active,2024-05-02",
        "Can you summarise this message from {}? It says the build is broken.",
        "Ping {}; they reported the outage first.",
        '<a href="mailto:{}">write to us</a>',
        "Is {}.",
        "(primary: {})",
    ],
    "PHONE_NUMBER": [
        "Call me back on {} after 5pm.",
        "Phone: {}",
        "The customer's mobile is {}, she prefers SMS.",
        "reach our front desk at {} (mon-fri)",
        "tel {} / ask for accounts",
        '"phone": "{}",',
        "Emergency contact number: {}",
        "Left a voicemail at {} about the delivery window.",
        "If the line drops, dial {} again.",
        "tel:{}",
        "mobile:{};",
    ],
    "CREDIT_CARD": [
        "My card number is {} and the expiry is 09/27.",
        "charge {} for the annual plan",
        "Visa {} was declined twice today",
        "card: {} cvv: 123",
        "Payment method ending ... actually the full number is {}",
        '"pan": "{}"',
        "Please refund to {} instead of the old card.",
        "Here is my credit card {}, can you check why it fails?",
    ],
    "IBAN_CODE": [
        "Wire the deposit to IBAN {} please.",
        "Bank details: {} (BIC in the attachment)",
        "Our new account is {}",
        "iban={}&amount=1200",
        "Refund to {} instead of the card.",
        "Salary goes to {}, update payroll.",
        "Kontonummer / IBAN: {}",
    ],
    "IP_ADDRESS": [
        "The request came from {} at 03:12 UTC.",
        "ssh admin@{} failed with permission denied",
        "Allow {} in the firewall rules.",
        "client_ip={} status=500 latency=812ms",
        "Our VPN gateway is {}",
        "Why does {} keep hitting the login endpoint?",
        "[WARN] too many requests from {}",
        "connect to {}:8443 timed out",  # IPv4 only: an IPv6 address with a port is written [addr]:port
        "X-Forwarded-For: {}",
    ],
    "US_SSN": [
        "My SSN is {} and my date of birth is in the form.",
        "social security number: {}",
        "SSN {} on the W-2 does not match.",
        "Applicant ssn: {}",
        "Please verify the social security no. {} for the loan.",
        "ssn#{}",
    ],
    "UK_NINO": [
        "My national insurance number is {}.",
        "NI number: {}",
        "NINO {} appears on the payslip",
        "Update the employee record with national insurance no {}",
        "ni no. {}, tax code 1257L",
    ],
}

NEGATIVES: list[Callable[[random.Random], str]] = [
    lambda rng: f"My card number is {_bad_card(rng)} but the app says it is invalid.",
    lambda rng: f"Order number {rng.randint(10**15, 10**16 - 1)} has not shipped yet.",
    lambda rng: (
        f"Upgrade the agent to version {rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)} before Monday."
    ),
    lambda rng: (
        f"Released v{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 200)} with the fix."
    ),
    lambda rng: f"We pinned numpy=={rng.randint(1, 2)}.{rng.randint(0, 26)}.{rng.randint(0, 9)} in the lock file.",
    lambda rng: (
        f"The meeting moved to {rng.randint(2020, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(8, 18)}:{rng.choice(['00', '30'])}."
    ),
    lambda rng: f"IBAN {iban(rng, valid=False)} was rejected by the bank (wrong check digits).",
    lambda rng: f"Tracking id 1Z{''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))}",
    lambda rng: f"commit {''.join(rng.choice('0123456789abcdef') for _ in range(40))} broke the build",
    lambda rng: (
        f"request id {rng.randint(0, 16**8):08x}-{rng.randint(0, 16**4):04x}-4{rng.randint(0, 16**3):03x}-a{rng.randint(0, 16**3):03x}-{rng.randint(0, 16**12):012x}"
    ),
    lambda rng: f"The total was ${rng.randint(1, 999)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d} after tax.",
    lambda rng: f"Mention @{rng.choice(FIRST)}_{rng.choice(LAST)} in the channel",
    lambda rng: f"mail delivery to {rng.choice(FIRST)}@localhost failed",
    lambda rng: f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
    lambda rng: f"Room {rng.randint(100, 999)}, building {rng.randint(1, 12)}, zip {rng.randint(10000, 99999)}",
    lambda rng: f"The SSN 000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} in the sample form is a placeholder.",
    lambda rng: f"Test SSN 666-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} is never issued.",
    lambda rng: f"pi is about 3.{rng.randint(1000, 9999)} and e is 2.71828",
    lambda rng: f"Set the colour to #{rng.randint(0, 16**6):06x} and the margin to {rng.randint(1, 40)}px",
    lambda rng: f"Error code {rng.randint(100, 999)}-{rng.randint(100, 999)} means the token expired.",
    lambda rng: (
        f"See https://docs.example.com/guide/{rng.choice(['setup', 'billing', 'api'])}#section-{rng.randint(1, 9)}"
    ),
    lambda rng: (
        f"Invoice INV-{rng.randint(2020, 2027)}-{rng.randint(1000, 99999)} is overdue by {rng.randint(2, 60)} days."
    ),
    lambda rng: (
        f"The sensor read {rng.randint(100, 999)}.{rng.randint(0, 999)}.{rng.randint(300, 999)}.{rng.randint(0, 99)} units."
    ),
    lambda rng: (
        f"Ship {rng.randint(2, 40)} units of SKU {rng.choice(string.ascii_uppercase)}{rng.randint(100000, 999999)} to the Leeds warehouse."
    ),
    lambda rng: f"Timestamp {rng.randint(1600000000, 1800000000)} is in seconds, not milliseconds.",
    lambda rng: (
        f"pip install tool=={rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)} fixed it"
    ),
    lambda rng: f"Dial extension {rng.randint(100, 9999)} or call 911 in an emergency.",
    lambda rng: (
        f"The flight {rng.choice(['BA', 'LH', 'AF'])}{rng.randint(100, 9999)} leaves gate {rng.choice('ABCD')}{rng.randint(1, 60)} at 14:{rng.randint(10, 59)}."
    ),
    lambda rng: (
        f"Coordinates {rng.randint(-89, 89)}.{rng.randint(100000, 999999)}, {rng.randint(-179, 179)}.{rng.randint(100000, 999999)}"
    ),
    lambda rng: (
        f"Account balance: {rng.randint(1000, 99999)}.{rng.randint(0, 99):02d} EUR as of {rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(2020, 2027)}"
    ),
    lambda rng: (
        f"Patch KB{rng.randint(1000000, 9999999)} and build {rng.randint(10000, 30000)}.{rng.randint(100, 9999)} are installed."
    ),
]


def _bad_card(rng: random.Random) -> str:
    number = card(rng).replace(" ", "").replace("-", "")
    last = int(number[-1])
    bad = number[:-1] + str((last + rng.randint(1, 9)) % 10)
    assert not luhn_ok(bad)
    return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))


def _fill(template: str, values: list[tuple[str, str]]) -> tuple[str, list[dict[str, object]]]:
    """``template`` with each ``{}`` replaced by a value in turn (other braces stay), and the gold span of each."""
    parts = template.split("{}")
    assert len(parts) == len(values) + 1, template
    text, spans = parts[0], []
    for (entity, value), tail in zip(values, parts[1:], strict=True):
        spans.append({"start": len(text), "end": len(text) + len(value), "entity": entity})
        text += value + tail
    return text, spans


MIXED = [
    "Hi, I'm locked out. Account email {}, phone {}. Thanks!",
    "Name: Jordan\nEmail: {}\nCard: {}\nIP at signup: {}",
    "Refund {} to IBAN {} and confirm by email to {}.",
    "{} logged in from {} and changed the recovery phone to {}.",
    "Employee file: SSN {}, email {}, payroll IBAN {}",
    "UK staff: NI {} / phone {}",
    "Customer (card {}) called from {} about a double charge.",
]


def build(seed: int, per_template: int = 5, negatives: int = 160) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for entity, templates in TEMPLATES.items():
        for template in templates:
            for _ in range(per_template):
                value = ipv4(rng) if template.startswith("connect to") else VALUES[entity](rng)
                text, spans = _fill(template, [(entity, value)])
                rows.append({"text": text, "spans": spans, "kind": "positive"})
    mixed_entities = [
        ["EMAIL_ADDRESS", "PHONE_NUMBER"],
        ["EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS"],
        ["CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS"],
        ["EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER"],
        ["US_SSN", "EMAIL_ADDRESS", "IBAN_CODE"],
        ["UK_NINO", "PHONE_NUMBER"],
        ["CREDIT_CARD", "PHONE_NUMBER"],
    ]
    for template, entities in zip(MIXED, mixed_entities, strict=True):
        for _ in range(8):
            text, spans = _fill(template, [(e, VALUES[e](rng)) for e in entities])
            rows.append({"text": text, "spans": spans, "kind": "positive"})
    for i in range(negatives):
        rows.append({"text": NEGATIVES[i % len(NEGATIVES)](rng), "spans": [], "kind": "negative"})
    rng.shuffle(rows)
    return [{"id": f"pii-{i:04d}", **row} for i, row in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "guardrails" / "pii.jsonl")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    rows = build(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    positives = sum(1 for r in rows if r["kind"] == "positive")
    print(f"wrote {len(rows)} texts ({positives} with PII, {len(rows) - positives} lookalikes) to {args.out}")


if __name__ == "__main__":
    main()
