"""PII masking: e-mail addresses, public IP addresses and phone numbers become placeholders.

FineWeb masks e-mails and public IPs only; phone numbers are added here with a conservative
pattern (international prefix or a grouped 10+ digit number) so that years, prices and
version numbers are left alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
PHONE = re.compile(
    r"(?<![\w+])(?<!\d\.)(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{3,4}[ .-])\d{3}[ .-]\d{2,4}(?:[ .-]\d{2})?(?!\w|\.\d)"
)

EMAIL_MASK = "<EMAIL>"
IP_MASK = "<IP>"
PHONE_MASK = "<PHONE>"


def mask_pii(text: str) -> tuple[str, Counter[str]]:
    """Replace e-mails, public IPv4 addresses and phone numbers; count what was masked."""
    counts: Counter[str] = Counter()
    text, counts["email"] = EMAIL.subn(EMAIL_MASK, text)

    def mask_ip(match: re.Match[str]) -> str:
        # Private, loopback and documentation ranges identify no one; keep them as written.
        if not ipaddress.ip_address(match.group()).is_global:
            return match.group()
        counts["ip"] += 1
        return IP_MASK

    text = IPV4.sub(mask_ip, text)
    text, counts["phone"] = PHONE.subn(PHONE_MASK, text)
    return text, +counts
