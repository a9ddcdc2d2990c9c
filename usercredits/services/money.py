"""Money as integer minor units with an ISO 4217 code. Decimal strings exist only at edges.

The exponent table follows ISO 4217 and Stripe: zero-decimal currencies (JPY) have no minor
unit, three-decimal ones (KWD) have a thousandth.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from usercredits.services.errors import InvalidInput

_ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
)
_THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())
_TWO_DECIMAL = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK
    LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD
    YER ZAR ZMW ZWL""".split()
)


MAX_MINOR_UNITS = 10**12
"""The largest price (10 billion dollars): totals stay far inside MongoDB's 64-bit ints."""


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in `currency`; InvalidInput for an unknown code."""
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    if currency in _TWO_DECIMAL:
        return 2
    raise InvalidInput(f"unknown currency {currency!r}: use an upper-case ISO 4217 code")


def normalize_currency(currency: str) -> str:
    """Upper-cases and checks a currency code, so 'usd' and 'USD' name one currency."""
    code = currency.strip().upper()
    currency_exponent(code)
    return code


@dataclass(frozen=True, slots=True)
class Money:
    minor_units: int
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str) -> "Money":
        """'19.99' USD -> 1999; rejects more digits than the currency has, and non-numbers."""
        code = normalize_currency(currency)
        exponent = currency_exponent(code)
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise InvalidInput(f"amount {amount!r} is not a decimal number") from None
        if not value.is_finite():
            raise InvalidInput(f"amount {amount!r} is not a finite number")
        scaled = value.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise InvalidInput(f"{code} has {exponent} decimal places; {amount!r} has more")
        if abs(scaled) > MAX_MINOR_UNITS:
            raise InvalidInput(f"amount {amount!r} {code} is larger than this service accepts")
        return cls(minor_units=int(scaled), currency=code)

    @property
    def amount(self) -> str:
        """The decimal string in major units: 1999 USD -> '19.99', 500 JPY -> '500'."""
        exponent = currency_exponent(self.currency)
        return f"{Decimal(self.minor_units).scaleb(-exponent):.{exponent}f}"
