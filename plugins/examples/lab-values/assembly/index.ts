// lab-values: an ocr-postprocess plugin (careport contract v1) in AssemblyScript.
//
// Finds common lab results in OCR text — HbA1c, glucose, creatinine, haemoglobin, white cells,
// platelets, sodium, potassium, CA-125 — with their value and unit, and returns them as
// annotations; the text comes back unchanged:
//
//   in:  {"text": "...", "pages": [...], "language": "en"}
//   out: {"text": "...", "annotations": [{"kind": "lab_value", "test": "HbA1c", "value": 7.2,
//         "unit": "%", "start": 10, "end": 21}, ...]}
//
// Offsets are byte offsets into the UTF-8 text, as in every careport annotation.
// Build: npx asc assembly/index.ts --runtime stub -O3 --noAssert -o lab_values.wasm
// (plugins/examples/build.sh does this and updates plugin.toml's sha256.)

class Test {
  constructor(public name: string, public aliases: string[], public units: string[]) {}
}

// Longest aliases first, so "fasting glucose" wins over "glucose" and "hba1c" over "hb".
const TESTS: Test[] = [
  new Test("HbA1c", ["haemoglobin a1c", "hemoglobin a1c", "hba1c", "a1c"], ["mmol/mol", "%"]),
  new Test("Glucose", ["fasting glucose", "blood glucose", "glucose"], ["mmol/l", "mg/dl"]),
  new Test("Creatinine", ["creatinine"], ["µmol/l", "umol/l", "mg/dl"]),
  new Test("Haemoglobin", ["haemoglobin", "hemoglobin", "hgb", "hb"], ["g/dl", "g/l"]),
  new Test("WBC", ["white blood cells", "white cell count", "leukocytes", "wbc"], ["x10^9/l", "×10^9/l", "10^9/l", "/µl", "/ul"]),
  new Test("Platelets", ["platelets", "plt"], ["x10^9/l", "×10^9/l", "10^9/l", "/µl", "/ul"]),
  new Test("Sodium", ["sodium", "na"], ["mmol/l"]),
  new Test("Potassium", ["potassium"], ["mmol/l"]),
  new Test("CA-125", ["ca-125", "ca 125", "ca125"], ["u/ml", "ku/l"]),
];

export function careport_contract(): i32 {
  return 1;
}

export function careport_alloc(len: i32): i32 {
  return <i32>heap.alloc(<usize>len);
}

function isDigit(c: i32): bool {
  return c >= 48 && c <= 57;
}

function isAlnum(c: i32): bool {
  return isDigit(c) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

function lower(c: i32): i32 {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

// Case-insensitive `word` at text[i].
function startsAt(text: string, i: i32, word: string): bool {
  if (i + word.length > text.length) return false;
  for (let k = 0; k < word.length; k++) {
    if (lower(text.charCodeAt(i + k)) != lower(word.charCodeAt(k))) return false;
  }
  return true;
}

function hexValue(c: i32): i32 {
  if (isDigit(c)) return c - 48;
  c = lower(c);
  return c >= 97 && c <= 102 ? c - 87 : 0;
}

// The top-level "text" string of a JSON object, decoded; null if there is none.
function findText(json: string): string | null {
  let depth = 0;
  let i = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c == 123 || c == 91) depth++;
    else if (c == 125 || c == 93) depth--;
    else if (c == 34) {
      const end = stringEnd(json, i);
      if (end < 0) return null;
      let k = end;
      while (k < json.length && json.charCodeAt(k) <= 32) k++;
      if (depth == 1 && k < json.length && json.charCodeAt(k) == 58 && json.substring(i + 1, end - 1) == "text") {
        k++;
        while (k < json.length && json.charCodeAt(k) <= 32) k++;
        if (k < json.length && json.charCodeAt(k) == 34) return decode(json, k);
        return null;
      }
      i = end;
      continue;
    }
    i++;
  }
  return null;
}

// The index just past the string literal starting at json[i] == '"', or -1.
function stringEnd(json: string, i: i32): i32 {
  let k = i + 1;
  while (k < json.length) {
    const c = json.charCodeAt(k);
    if (c == 92) k += 2;
    else if (c == 34) return k + 1;
    else k++;
  }
  return -1;
}

function decode(json: string, i: i32): string {
  let out = "";
  let k = i + 1;
  while (k < json.length && json.charCodeAt(k) != 34) {
    const c = json.charCodeAt(k);
    if (c == 92 && k + 1 < json.length) {
      const e = json.charCodeAt(k + 1);
      k += 2;
      if (e == 110) out += "\n";
      else if (e == 116) out += "\t";
      else if (e == 114) out += "\r";
      else if (e == 98 || e == 102) out += " ";
      else if (e == 117 && k + 4 <= json.length) {
        const unit = (hexValue(json.charCodeAt(k)) << 12) | (hexValue(json.charCodeAt(k + 1)) << 8) |
          (hexValue(json.charCodeAt(k + 2)) << 4) | hexValue(json.charCodeAt(k + 3));
        out += String.fromCharCode(unit);
        k += 4;
      } else out += String.fromCharCode(e);
    } else {
      out += String.fromCharCode(c);
      k++;
    }
  }
  return out;
}

function escape(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\"";
    else if (c == 92) out += "\\\\";
    else if (c == 10) out += "\\n";
    else if (c == 13) out += "\\r";
    else if (c == 9) out += "\\t";
    else if (c < 32) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

// UTF-8 byte offset of every UTF-16 index of `s` (and of its end).
function byteOffsets(s: string): Int32Array {
  const out = new Int32Array(s.length + 1);
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    out[i] = bytes;
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c < 0xdc00) bytes += 4; // a surrogate pair: 4 bytes for both halves
    else if (c >= 0xdc00 && c < 0xe000) bytes += 0;
    else bytes += 3;
  }
  out[s.length] = bytes;
  return out;
}

function annotate(text: string): string {
  const at = byteOffsets(text);
  let found = "";
  let count = 0;
  let i = 0;
  while (i < text.length) {
    let matched = false;
    if (i == 0 || !isAlnum(text.charCodeAt(i - 1))) {
      for (let t = 0; t < TESTS.length && !matched; t++) {
        const test = TESTS[t];
        for (let a = 0; a < test.aliases.length && !matched; a++) {
          const alias = test.aliases[a];
          if (!startsAt(text, i, alias)) continue;
          let k = i + alias.length;
          if (k < text.length && isAlnum(text.charCodeAt(k))) continue;
          // "HbA1c: 7.2 %", "glucose = 6.1 mmol/L", "Platelets 250 x10^9/L"
          while (k < text.length && (text.charCodeAt(k) == 32 || text.charCodeAt(k) == 58 || text.charCodeAt(k) == 61 || text.charCodeAt(k) == 9)) k++;
          const numStart = k;
          while (k < text.length && (isDigit(text.charCodeAt(k)) || ((text.charCodeAt(k) == 46 || text.charCodeAt(k) == 44) && k + 1 < text.length && isDigit(text.charCodeAt(k + 1)) && k > numStart))) k++;
          if (k == numStart) continue;
          const value = parseFloat(text.substring(numStart, k).replace(",", "."));
          let end = k;
          let unit = "";
          let u = k;
          while (u < text.length && text.charCodeAt(u) == 32) u++;
          for (let n = 0; n < test.units.length; n++) {
            if (startsAt(text, u, test.units[n])) {
              unit = test.units[n];
              end = u + unit.length;
              break;
            }
          }
          if (count > 0) found += ",";
          found += "{\"kind\":\"lab_value\",\"test\":" + escape(test.name) + ",\"value\":" + value.toString() +
            ",\"unit\":" + (unit.length > 0 ? escape(unit) : "null") + ",\"start\":" + at[i].toString() +
            ",\"end\":" + at[end].toString() + "}";
          count++;
          matched = true;
          i = end;
        }
      }
    }
    if (!matched) i++;
  }
  return "{\"text\":" + escape(text) + ",\"annotations\":[" + found + "]}";
}

function result(s: string): i64 {
  const bytes = String.UTF8.encode(s);
  return (<i64>changetype<usize>(bytes) << 32) | <i64>bytes.byteLength;
}

export function careport_call(op: i32, opLen: i32, input: i32, inputLen: i32): i64 {
  if (String.UTF8.decodeUnsafe(<usize>op, <usize>opLen) != "ocr-postprocess") {
    return result("{\"error\":\"unknown operation\"}");
  }
  const text = findText(String.UTF8.decodeUnsafe(<usize>input, <usize>inputLen));
  if (text === null) return result("{\"error\":\"the input has no text\"}");
  return result(annotate(text!));
}
