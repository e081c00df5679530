import assert from 'node:assert/strict'
import fc from 'fast-check'
import { formatBytes, formatMoney, minorUnitExponent, parseBytes, parseMoney, toMajorString } from '../../node/format.ts'

const CURRENCIES = ['EUR', 'USD', 'JPY', 'BHD', 'KWD', 'GBP', 'CHF', 'TOKEN']
const minorUnits = fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER })

describe('money and size formatting', function () {
  it('takes the ISO 4217 minor-unit exponent from Intl', function () {
    assert.equal(minorUnitExponent('EUR'), 2)
    assert.equal(minorUnitExponent('JPY'), 0)
    assert.equal(minorUnitExponent('BHD'), 3)
    // a currency Intl refuses is counted in whole units
    assert.equal(minorUnitExponent('TOKEN'), 0)
  })

  it('formats minor units as people read them', function () {
    assert.equal(formatMoney(1250, 'EUR'), '€12.50')
    assert.equal(formatMoney(1250, 'JPY'), '¥1,250')
    assert.equal(formatMoney(1250, 'BHD'), 'BHD\u00a01.250')
    assert.equal(formatMoney(5, 'EUR'), '€0.05')
    assert.equal(formatMoney(-5, 'EUR'), '-€0.05')
    assert.equal(formatMoney(1250, 'TOKEN'), '1250 TOKEN')
    // exact beyond a double's cents: no float division on the way
    assert.equal(formatMoney(Number.MAX_SAFE_INTEGER, 'EUR'), '€90,071,992,547,409.91')
  })

  it('parses whole minor units, and decimals of major units with or without the code', function () {
    assert.equal(parseMoney('1250', 'EUR'), 1250)
    assert.equal(parseMoney('12.50', 'EUR'), 1250)
    assert.equal(parseMoney('12.5', 'EUR'), 1250)
    assert.equal(parseMoney('12.50 EUR', 'EUR'), 1250)
    assert.equal(parseMoney('12eur', 'EUR'), 1200)
    assert.equal(parseMoney('0.125', 'BHD'), 125)
    assert.equal(parseMoney('1250 JPY', 'JPY'), 1250)
  })

  it('refuses too many decimals, a different currency and what is not a number', function () {
    assert.throws(() => parseMoney('12.505', 'EUR'), { code: 'ERR_BAD_AMOUNT', message: /3 decimals, but EUR has 2/ })
    assert.throws(() => parseMoney('12.5', 'JPY'), { code: 'ERR_BAD_AMOUNT', message: /JPY has none/ })
    assert.throws(() => parseMoney('12.50 USD', 'EUR'), { code: 'ERR_BAD_AMOUNT', message: /in USD/ })
    assert.throws(() => parseMoney('twelve', 'EUR'), { code: 'ERR_BAD_AMOUNT' })
    assert.throws(() => parseMoney('.', 'EUR'), { code: 'ERR_BAD_AMOUNT' })
    assert.throws(() => parseMoney('99999999999999999', 'EUR'), { code: 'ERR_BAD_AMOUNT', message: /too large/ })
  })

  it('round trip: major-unit string → parse gives the minor units back', function () {
    fc.assert(fc.property(minorUnits, fc.constantFrom(...CURRENCIES), (minor, currency) => {
      assert.equal(parseMoney(toMajorString(minor, currency), currency), minor)
      assert.equal(parseMoney(`${toMajorString(minor, currency)} ${currency}`, currency), minor)
    }), { numRuns: 2000 })
  })

  it('round trip: the formatted amount, stripped of symbol and grouping, parses back', function () {
    fc.assert(fc.property(minorUnits, fc.constantFrom(...CURRENCIES), (minor, currency) => {
      const shown = formatMoney(minor, currency).replace(/[^\d.-]/g, '')
      assert.equal(parseMoney(shown, currency), minor)
    }), { numRuns: 2000 })
  })

  it('a decimal with more digits than the currency has is always refused', function () {
    fc.assert(fc.property(fc.nat(1_000_000), fc.constantFrom('EUR', 'JPY', 'BHD'), fc.integer({ min: 1, max: 9 }), (whole, currency, extra) => {
      const text = `${whole}.${'1'.repeat(minorUnitExponent(currency) + extra)}`
      assert.throws(() => parseMoney(text, currency), { code: 'ERR_BAD_AMOUNT' })
    }))
  })

  it('formats sizes in B, KiB, MiB, GiB', function () {
    assert.equal(formatBytes(0), '0 B')
    assert.equal(formatBytes(1023), '1023 B')
    assert.equal(formatBytes(1536), '1.5 KiB')
    assert.equal(formatBytes(2 ** 20 - 1), '1.0 MiB')
    assert.equal(formatBytes(3 * 2 ** 30), '3.0 GiB')
  })

  it('round trip: a formatted size parses back within its rounding', function () {
    fc.assert(fc.property(fc.nat(Number.MAX_SAFE_INTEGER), n => {
      const shown = formatBytes(n)
      const back = parseBytes(shown)
      if (n < 1024) assert.equal(back, n)
      // one decimal of the unit shown: at most half a tenth of it, relative to n
      else assert.ok(Math.abs(back - n) / n <= 0.05 / 1.0, `${n} → ${shown} → ${back}`)
      assert.match(shown, /^\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)$/)
    }), { numRuns: 2000 })
  })
})
