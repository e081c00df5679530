// Money and sizes as people read and type them. Money travels as integer minor units; the
// number of decimals of a currency is its ISO 4217 minor-unit exponent (EUR 2, JPY 0, BHD 3),
// as Intl knows it. A currency Intl does not accept (an escrow may settle "TOKEN") has none.
import { KeyfairError } from '../protocols/errors.ts'

export class BadAmountError extends KeyfairError {
  static readonly code = 'ERR_BAD_AMOUNT'
  constructor (message: string) {
    super(message, BadAmountError.code)
  }
}

const formatters = new Map<string, Intl.NumberFormat | null>()

function currencyFormat (currency: string): Intl.NumberFormat | null {
  let format = formatters.get(currency)
  if (format === undefined) {
    try {
      format = new Intl.NumberFormat('en', { style: 'currency', currency })
    } catch {
      format = null
    }
    formatters.set(currency, format)
  }
  return format
}

/** Decimals of the currency's major unit: 2 for EUR, 0 for JPY, 3 for BHD, 0 when unknown to Intl */
export function minorUnitExponent (currency: string): number {
  return currencyFormat(currency)?.resolvedOptions().maximumFractionDigits ?? 0
}

/** Minor units as an exact decimal string of major units: 1250 EUR → "12.50" */
export function toMajorString (minor: number, currency: string): string {
  if (!Number.isSafeInteger(minor)) throw new BadAmountError(`${minor} is not a whole number of minor units`)
  const exponent = minorUnitExponent(currency)
  const digits = Math.abs(minor).toString().padStart(exponent + 1, '0')
  const whole = digits.slice(0, digits.length - exponent)
  const fraction = digits.slice(digits.length - exponent)
  return `${minor < 0 ? '-' : ''}${whole}${exponent > 0 ? '.' + fraction : ''}`
}

/** An amount for people: 1250 EUR → "€12.50", 1250 JPY → "¥1,250", 1250 BHD → "BHD 1.250" */
export function formatMoney (minor: number, currency: string): string {
  const major = toMajorString(minor, currency)
  const format = currencyFormat(currency)
  // a decimal string keeps every digit exact, where minor / 100 as a float would not
  if (format == null) return `${major} ${currency}`
  return format.format(major as unknown as number)
}

/**
 * An amount a person typed, in minor units: a whole number is minor units as before ("1250");
 * a decimal is major units of `currency` ("12.50" EUR → 1250), optionally followed by the
 * currency code ("12.50 EUR", "12.50EUR"), which must then be `currency`.
 */
export function parseMoney (text: string, currency: string): number {
  const match = /^\s*(-?)(\d*)(?:(\.)(\d*))?\s*([A-Za-z][A-Za-z0-9]*)?\s*$/.exec(text)
  if (match == null || (match[2] === '' && (match[4] ?? '') === '')) {
    throw new BadAmountError(`'${text}' is not an amount: give minor units (1250) or major units (12.50 or 12.50 ${currency})`)
  }
  const [, sign, whole, point, fraction = '', code] = match
  if (code != null && code.toUpperCase() !== currency.toUpperCase()) {
    throw new BadAmountError(`'${text}' is in ${code.toUpperCase()}, but the amount here is in ${currency}`)
  }
  let minor: number
  if (point == null && code == null) {
    minor = Number(whole)
  } else {
    const exponent = minorUnitExponent(currency)
    if (fraction.length > exponent) {
      throw new BadAmountError(`'${text}' has ${fraction.length} decimals, but ${currency} has ${exponent === 0 ? 'none' : exponent}`)
    }
    minor = Number(`${whole === '' ? '0' : whole}${fraction.padEnd(exponent, '0')}`)
  }
  if (!Number.isSafeInteger(minor)) throw new BadAmountError(`'${text}' is too large an amount`)
  return sign === '-' ? -minor : minor
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const

/** A size for people: 512 → "512 B", 1536 → "1.5 KiB", 3 × 2^30 → "3.0 GiB" */
export function formatBytes (n: number): string {
  if (!Number.isFinite(n) || n < 0) return `${n} B`
  if (n < 1024) return `${Math.round(n)} B`
  let value = n / 1024
  let unit = 0
  // rounded to one decimal, 1023.96 KiB would read "1024.0 KiB": move up a unit first
  while (value >= 1023.95 && unit < BYTE_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${BYTE_UNITS[unit]}`
}

const BYTE_FACTORS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, PiB: 2 ** 50 }

/** A size as formatBytes writes it, in bytes (approximate above 1 KiB: one decimal) */
export function parseBytes (text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|PiB)\s*$/.exec(text)
  if (match == null) throw new BadAmountError(`'${text}' is not a size (e.g. 512 B, 1.5 KiB, 3.0 GiB)`)
  return Math.round(Number(match[1]) * BYTE_FACTORS[match[2]!]!)
}
