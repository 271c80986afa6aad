// A small QR code encoder (ISO/IEC 18004: byte mode, error correction level M, versions
// 1-20, up to 666 bytes), so enrolment and pairing codes are drawn in the page as SVG and
// never leave it. After Project Nayuki's reference algorithm (MIT), cut down to what we use.
const ECC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26];
const BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16];
const MAX_VERSION = 20;

export class QrTooLong extends Error {}

// The QR code of `text` as an SVG element (dark modules as one path, 4-module quiet zone).
export function qrSvg(text, { label = "QR code" } = {}) {
  const m = qrMatrix(text);
  const n = m.length;
  let d = "";
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (m[y][x]) d += `M${x + 4} ${y + 4}h1v1h-1z`;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${n + 8} ${n + 8}`);
  svg.setAttribute("class", "qr");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", "100%"); bg.setAttribute("height", "100%"); bg.setAttribute("fill", "#fff");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "#000");
  svg.append(bg, path);
  return svg;
}

// Modules as rows of booleans (true = dark).
export function qrMatrix(text) {
  const bytes = [...new TextEncoder().encode(text)];
  let ver = 1;
  for (; ver <= MAX_VERSION; ver++) if (4 + countBits(ver) + bytes.length * 8 <= dataCodewords(ver) * 8) break;
  if (ver > MAX_VERSION) throw new QrTooLong(`too long for a QR code here (${bytes.length} bytes)`);
  const bits = [];
  const push = (val, len) => { for (let i = len - 1; i >= 0; i--) bits.push((val >>> i) & 1); };
  push(4, 4);
  push(bytes.length, countBits(ver));
  for (const b of bytes) push(b, 8);
  const cap = dataCodewords(ver) * 8;
  push(0, Math.min(4, cap - bits.length));
  push(0, (8 - (bits.length % 8)) % 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < cap / 8; pad ^= 0xec ^ 0x11) data.push(pad);
  const q = new Grid(ver);
  q.drawCodewords(interleave(ver, data));
  let best = null;
  let bestScore = Infinity;
  for (let mask = 0; mask < 8; mask++) {
    q.applyMask(mask); q.drawFormat(mask);
    const score = q.penalty();
    if (score < bestScore) { bestScore = score; best = mask; }
    q.applyMask(mask);  // XOR again: undone
  }
  q.applyMask(best); q.drawFormat(best);
  return q.modules;
}

class Grid {
  constructor(ver) {
    this.ver = ver;
    const n = (this.size = ver * 4 + 17);
    this.modules = Array.from({ length: n }, () => Array(n).fill(false));
    this.fn = Array.from({ length: n }, () => Array(n).fill(false));
    for (let i = 0; i < n; i++) { this.set(6, i, i % 2 === 0); this.set(i, 6, i % 2 === 0); }
    for (const [x, y] of [[3, 3], [n - 4, 3], [3, n - 4]]) {
      for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) {
        const dist = Math.max(Math.abs(dx), Math.abs(dy));
        if (x + dx >= 0 && x + dx < n && y + dy >= 0 && y + dy < n) this.set(x + dx, y + dy, dist !== 2 && dist !== 4);
      }
    }
    const pos = alignmentPositions(ver);
    const last = pos.length - 1;
    pos.forEach((ax, i) => pos.forEach((ay, j) => {
      if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) return;
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) this.set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
    }));
    this.drawFormat(0);  // reserves the format areas
    if (ver >= 7) {
      let rem = ver;
      for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
      const vbits = (ver << 12) | rem;
      for (let i = 0; i < 18; i++) {
        const bit = ((vbits >>> i) & 1) === 1;
        const a = n - 11 + (i % 3);
        const b = Math.floor(i / 3);
        this.set(a, b, bit); this.set(b, a, bit);
      }
    }
  }

  set(x, y, dark) { this.modules[y][x] = dark; this.fn[y][x] = true; }

  drawFormat(mask) {
    const data = (0 << 3) | mask;  // level M is 00
    let rem = data;
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
    const bits = ((data << 10) | rem) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    const n = this.size;
    for (let i = 0; i <= 5; i++) this.set(8, i, bit(i));
    this.set(8, 7, bit(6)); this.set(8, 8, bit(7)); this.set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.set(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.set(n - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.set(8, n - 15 + i, bit(i));
    this.set(8, n - 8, true);
  }

  drawCodewords(data) {
    const n = this.size;
    let i = 0;
    for (let right = n - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      for (let vert = 0; vert < n; vert++) {
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          const y = ((right + 1) & 2) === 0 ? n - 1 - vert : vert;
          if (!this.fn[y][x] && i < data.length * 8) {
            this.modules[y][x] = ((data[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
            i++;
          }
        }
      }
    }
  }

  applyMask(mask) {
    const f = [(x, y) => (x + y) % 2, (x, y) => y % 2, (x) => x % 3, (x, y) => (x + y) % 3,
      (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2, (x, y) => ((x * y) % 2) + ((x * y) % 3),
      (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2, (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2][mask];
    for (let y = 0; y < this.size; y++) for (let x = 0; x < this.size; x++) {
      if (!this.fn[y][x] && f(x, y) === 0) this.modules[y][x] = !this.modules[y][x];
    }
  }

  // Runs of one colour, 2x2 blocks and dark/light balance (the finder-lookalike rule is left
  // out: any mask decodes, the score only picks an easier one to scan).
  penalty() {
    const n = this.size;
    const m = this.modules;
    let score = 0;
    let dark = 0;
    for (let a = 0; a < n; a++) {
      let runR = 1;
      let runC = 1;
      for (let b = 0; b < n; b++) {
        if (m[a][b]) dark++;
        if (b > 0) {
          if (m[a][b] === m[a][b - 1]) { runR++; if (runR === 5) score += 3; else if (runR > 5) score++; } else runR = 1;
          if (m[b][a] === m[b - 1][a]) { runC++; if (runC === 5) score += 3; else if (runC > 5) score++; } else runC = 1;
        }
        if (a > 0 && b > 0 && m[a][b] === m[a - 1][b] && m[a][b] === m[a][b - 1] && m[a][b] === m[a - 1][b - 1]) score += 3;
      }
    }
    const total = n * n;
    score += (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10;
    return score;
  }
}

function countBits(ver) { return ver <= 9 ? 8 : 16; }

function rawModules(ver) {
  let r = (16 * ver + 128) * ver + 64;
  if (ver >= 2) { const k = Math.floor(ver / 7) + 2; r -= (25 * k - 10) * k - 55; if (ver >= 7) r -= 36; }
  return r;
}

function dataCodewords(ver) { return Math.floor(rawModules(ver) / 8) - ECC_PER_BLOCK[ver] * BLOCKS[ver]; }

function alignmentPositions(ver) {
  if (ver === 1) return [];
  const k = Math.floor(ver / 7) + 2;
  const step = Math.ceil((ver * 4 + 4) / (k * 2 - 2)) * 2;
  const out = [6];
  for (let pos = ver * 4 + 17 - 7; out.length < k; pos -= step) out.splice(1, 0, pos);
  return out;
}

function gfMul(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) { z = (z << 1) ^ ((z >>> 7) * 0x11d); z ^= ((y >>> i) & 1) * x; }
  return z;
}

function interleave(ver, data) {
  const nb = BLOCKS[ver];
  const eccLen = ECC_PER_BLOCK[ver];
  const raw = Math.floor(rawModules(ver) / 8);
  const shortCount = nb - (raw % nb);
  const shortLen = Math.floor(raw / nb);
  const div = Array(eccLen).fill(0);
  div[eccLen - 1] = 1;
  for (let i = 0, root = 1; i < eccLen; i++, root = gfMul(root, 2)) {
    for (let j = 0; j < eccLen; j++) { div[j] = gfMul(div[j], root); if (j + 1 < eccLen) div[j] ^= div[j + 1]; }
  }
  const blocks = [];
  for (let i = 0, k = 0; i < nb; i++) {
    const dat = data.slice(k, k + shortLen - eccLen + (i < shortCount ? 0 : 1));
    k += dat.length;
    const rem = Array(eccLen).fill(0);
    for (const b of dat) {
      const factor = b ^ rem.shift();
      rem.push(0);
      div.forEach((c, j) => { rem[j] ^= gfMul(c, factor); });
    }
    if (i < shortCount) dat.push(0);
    blocks.push(dat.concat(rem));
  }
  const out = [];
  for (let i = 0; i < blocks[0].length; i++) {
    blocks.forEach((b, j) => { if (i !== shortLen - eccLen || j >= shortCount) out.push(b[i]); });
  }
  return out;
}
