// A form built from a JSON Schema: strings, numbers and integers, booleans, enums, nested objects
// and arrays of simple values (one value per line). `schemaForm(schema, prefix)` answers
// `{node, read(), showErrors(errors)}`: `read()` gives the value or throws a FormError naming the
// field; `showErrors` puts the API's `[{path, message}]` next to the fields they name (JSON
// pointers), and answers the errors it could not place. Anything the form cannot express (a
// schema with no properties, `oneOf`, arrays of objects) falls back to a JSON text area.

import { el, fieldErrors, setError } from "./studio.js";

export class FormError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

const SIMPLE = new Set(["string", "number", "integer", "boolean"]);
let counter = 0;

function typeOf(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (Array.isArray(schema.enum)) return "enum";
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  if (t === "object" && schema.properties && typeof schema.properties === "object") return "object";
  if (t === "array" && schema.items && SIMPLE.has(typeOf(schema.items))) return "array";
  if (SIMPLE.has(t)) return t;
  return null;
}

function convert(type, raw, path) {
  if (type === "number" || type === "integer") {
    const n = Number(raw);
    if (raw.trim() === "" || Number.isNaN(n)) throw new FormError(path, `${raw} is not a number`);
    if (type === "integer" && !Number.isInteger(n)) throw new FormError(path, `${raw} is not a whole number`);
    return n;
  }
  if (type === "boolean") {
    if (raw === "true") return true;
    if (raw === "false") return false;
    throw new FormError(path, `${raw} is not true or false`);
  }
  return raw;
}

// One field: `{node, read() -> [present, value], path, message}`.
function field(name, schema, path, required) {
  const id = `f${++counter}`;
  const type = typeOf(schema);
  const title = schema.title || name;
  const message = el("span", { class: "field-error", id: `${id}-err`, role: "alert", "data-path": path });
  const hint = schema.description ? el("span", { class: "hint" }, schema.description) : null;
  const label = el("label", { for: id }, title, required ? el("span", { class: "req", "aria-hidden": "true" }, " *") : null);
  const described = `${id}-err`;
  let input;
  let read;
  if (type === "object") {
    const inner = objectFields(schema, path);
    const box = el("fieldset", { class: "nested", "data-path": path }, el("legend", {}, title, required ? " *" : ""), hint, ...inner.nodes, message);
    return { node: box, path, message, read: () => [true, inner.read()], nested: inner };
  }
  if (type === "boolean") {
    input = el("input", { id, type: "checkbox", name: path, "aria-describedby": described, "data-path": path });
    if (schema.default === true) input.checked = true;
    read = () => [true, input.checked];
    return {
      node: el("div", { class: "field field-check" }, input, label, hint, message),
      path,
      message,
      read,
    };
  }
  if (type === "enum") {
    const options = schema.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v)));
    input = el("select", { id, name: path, "aria-describedby": described, "data-path": path }, required ? null : el("option", { value: "" }, "—"), ...options);
    if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
    read = () => (input.value === "" ? [false] : [true, JSON.parse(input.value)]);
  } else if (type === "array") {
    const itemType = typeOf(schema.items);
    input = el("textarea", { id, name: path, rows: 3, "aria-describedby": described, "data-path": path, placeholder: "one value per line" });
    read = () => {
      const lines = input.value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
      if (!lines.length && !required) return [false];
      return [true, lines.map((line, i) => convert(itemType === "enum" ? "string" : itemType, line, `${path}/${i}`))];
    };
  } else if (type === "number" || type === "integer" || type === "string") {
    const attrs = { id, name: path, "aria-describedby": described, "data-path": path, spellcheck: "false" };
    if (type !== "string") Object.assign(attrs, { type: "number", step: type === "integer" ? "1" : "any" });
    input = el("input", attrs);
    if (schema.default !== undefined) input.value = String(schema.default);
    read = () => (input.value === "" ? [false] : [true, convert(type, input.value, path)]);
  } else {
    input = el("textarea", { id, name: path, rows: 4, class: "json", "aria-describedby": described, "data-path": path, placeholder: "JSON" });
    read = () => {
      if (input.value.trim() === "") return [false];
      try {
        return [true, JSON.parse(input.value)];
      } catch (err) {
        throw new FormError(path, `not valid JSON: ${err.message}`);
      }
    };
  }
  return { node: el("div", { class: "field" }, label, input, hint, message), path, message, read };
}

function objectFields(schema, path) {
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const fields = Object.entries(schema.properties || {}).map(([name, sub]) =>
    field(name, sub || {}, `${path}/${name.replaceAll("~", "~0").replaceAll("/", "~1")}`, required.has(name)),
  );
  return {
    nodes: fields.map((f) => f.node),
    fields,
    read() {
      const out = {};
      for (const f of fields) {
        const [present, value] = f.read();
        const name = f.path.slice(path.length + 1).replaceAll("~1", "/").replaceAll("~0", "~");
        // an own property even for a name like "__proto__"
        if (present) {
          Object.defineProperty(out, name, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        else if (required.has(name)) throw new FormError(f.path, "required");
      }
      return out;
    },
  };
}

function allFields(list) {
  return list.flatMap((f) => [f, ...(f.nested ? allFields(f.nested.fields) : [])]);
}

export function schemaForm(schema) {
  const root = typeOf(schema) === "object" ? objectFields(schema, "") : null;
  const raw = root ? null : field("Payload (JSON)", {}, "", false);
  const fields = root ? allFields(root.fields) : [raw];
  const node = root ? el("div", { class: "schema-form" }, ...root.nodes) : el("div", { class: "schema-form" }, raw.node);
  function clear() {
    for (const f of fields) f.message.textContent = "";
  }
  return {
    node,
    read() {
      clear();
      if (root) return root.read();
      const [present, value] = raw.read();
      return present ? value : {};
    },
    // Places `[{path, message}]` next to their fields; answers those it could not place.
    showErrors(errors) {
      clear();
      const left = [];
      for (const e of errors) {
        const path = (e && e.path) || "";
        const target = fields.find((f) => f.path === path) || (path && fields.find((f) => path.startsWith(`${f.path}/`)));
        if (target) target.message.textContent = e.message;
        else left.push(e);
      }
      return left;
    },
  };
}

// Reads `form`; on a field the form cannot read, marks it and says so in `errorNode` (answers
// undefined: nothing is to be sent).
export function readForm(form, errorNode) {
  setError(errorNode, "");
  try {
    return form.read();
  } catch (err) {
    if (!(err instanceof FormError)) throw err;
    form.showErrors([{ path: err.path, message: err.message }]);
    setError(errorNode, "Fix the marked field — nothing was sent.");
    return undefined;
  }
}

// The API's refusal: its field errors next to their fields, the rest listed under the message.
export function showRefusal(form, errorNode, prefix, err) {
  const left = form.showErrors((err.body && err.body.errors) || []);
  setError(errorNode, `${prefix}: ${err.describe()}`);
  if (left.length) {
    const list = el("ul", { class: "field-errors" });
    fieldErrors(list, { body: { errors: left } });
    errorNode.append(list);
  }
}
