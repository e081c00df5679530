// A small PCM WAV file (a sine tone) for tests that play audio.

/** `seconds` of a 440 Hz tone, 16-bit mono PCM at `rate` Hz, as a WAV file */
export function toneWav (seconds: number, rate = 22_050): Uint8Array {
  const samples = Math.round(seconds * rate)
  const data = samples * 2
  const buffer = Buffer.alloc(44 + data)
  buffer.write('RIFF', 0, 'ascii')
  buffer.writeUInt32LE(36 + data, 4)
  buffer.write('WAVE', 8, 'ascii')
  buffer.write('fmt ', 12, 'ascii')
  buffer.writeUInt32LE(16, 16) // fmt chunk size
  buffer.writeUInt16LE(1, 20) // PCM
  buffer.writeUInt16LE(1, 22) // mono
  buffer.writeUInt32LE(rate, 24)
  buffer.writeUInt32LE(rate * 2, 28) // bytes per second
  buffer.writeUInt16LE(2, 32) // bytes per frame
  buffer.writeUInt16LE(16, 34) // bits per sample
  buffer.write('data', 36, 'ascii')
  buffer.writeUInt32LE(data, 40)
  for (let i = 0; i < samples; i++) buffer.writeInt16LE(Math.round(Math.sin(2 * Math.PI * 440 * i / rate) * 12_000), 44 + i * 2)
  return new Uint8Array(buffer)
}
