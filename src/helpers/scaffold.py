"""`scv init`: a commented params/sources.yaml drafted from a folder of exports.

For each file it sniffs what it can - encoding, delimiter, decimal mark, header row and footer, date
format, the list of records in a JSON file - proposes a canonical column for each header it knows
(Spanish and English synonyms) and the kind of records the file holds, and marks with `# TODO` what
it could not decide. A transaction file with a customer id and no party file gets a party source
derived from it. The analyst edits the draft; `scv check` confirms it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from helpers import schema

#: Header synonyms (compared without accents, case, spaces and punctuation) -> canonical column.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "source_id": ("id", "codigo", "cod", "codcliente", "codigocliente", "customerid", "clientid", "accountno",
                  "accountnumber", "numcliente", "idcliente", "customerref", "customerno", "cliente", "customer"),
    "given_name": ("nombre", "firstname", "forename", "givenname", "name1"),
    "family_names": ("apellidos", "apellido", "lastname", "surname", "familyname"),
    "full_name": ("razonsocial", "nombrecompleto", "fullname", "accountname", "customername", "nombrecliente",
                  "company", "empresa", "name"),
    "tax_id": ("nif", "cif", "dni", "nie", "taxid", "vat", "vatno", "vatnumber", "ssn", "tin"),
    "email": ("email", "correo", "mail", "emailaddress", "correoelectronico", "customeremail"),
    "phone": ("telefono", "tel", "phone", "movil", "mobile", "telephone", "phonenumber"),
    "birth_date": ("fechanacimiento", "nacimiento", "birthdate", "dateofbirth", "dob"),
    "address": ("direccion", "domicilio", "address", "street", "calle", "address1"),
    "postcode": ("cp", "codpostal", "codigopostal", "postcode", "postalcode", "zip", "zipcode", "shippostcode"),
    "city": ("poblacion", "ciudad", "localidad", "municipio", "city", "town", "suburb"),
    "province": ("provincia", "province", "state", "county", "region"),
    "country": ("pais", "country", "shipcountry"),
    "iban": ("iban", "cuenta", "bankaccount"),
    "currency": ("moneda", "divisa", "currency"),
    "payment_method": ("formapago", "metodopago", "paymentmethod", "payment", "pago"),
    "consent_email": ("aceptaemail", "optinemail", "marketingok", "acceptsmarketing", "newsletter"),
    "created_at": ("fechaalta", "alta", "createdat", "created", "opened", "signupdate"),
    "updated_at": ("fechamodificacion", "modificado", "updatedat", "modifiedat", "lastupdate"),
    "party_id": (),
    "order_id": ("numfactura", "factura", "pedido", "numpedido", "invoice", "invoiceno", "orderid", "orderref",
                 "ordernumber"),
    "date": ("fecha", "fechafactura", "fechapedido", "date", "invoicedate", "orderdate"),
    "product": ("producto", "articulo", "sku", "item", "stockcode", "product", "referencia"),
    "category": ("familia", "categoria", "category", "group", "productgroup", "seccion"),
    "quantity": ("cantidad", "unidades", "qty", "quantity", "units"),
    "amount": ("importe", "total", "amount", "importetotal", "totalamount", "linetotal", "net", "neto"),
    "unit_price": ("precio", "preciounitario", "unitprice", "price", "netprice", "pvp"),
    "due_date": ("fechavencimiento", "vencimiento", "duedate"),
    "paid_date": ("fechacobro", "cobro", "fechapago", "paiddate", "paymentdate"),
    "channel": ("canal", "channel", "network", "red"),
    "opened_at": ("fechaapertura", "abierto", "openedat", "createdat", "submittedat", "publishedat"),
    "closed_at": ("fechacierre", "cerrado", "closedat", "solved", "resolvedat"),
    "handling_minutes": ("minutos", "handlingminutes", "minutes", "duracion"),
    "score": ("csat", "nps", "puntuacion", "score", "satisfaction", "valoracion", "rating"),
    "text": ("asunto", "comentario", "texto", "subject", "comment", "text", "description"),
    "campaign": ("campana", "campaign", "campaignid"),
    "selection_group": ("grupo", "group", "selectiongroup"),
    "control": ("control", "iscontrol", "grupocontrol"),
    "contacted_at": ("fechaenvio", "enviado", "sentat", "contactedat"),
    "responded": ("respondio", "responded", "converted", "respuesta"),
    "stage": ("etapa", "fase", "stage", "status"),
    "unit_cost": ("coste", "costeunitario", "unitcost", "cost"),
}  # fmt: skip
#: Canonical columns that say what kind of records a file holds, with their weight.
KIND_SIGNS: dict[str, dict[str, int]] = {
    "transaction": {"date": 2, "amount": 3, "quantity": 2, "unit_price": 2, "order_id": 2, "product": 1},
    "interaction": {"score": 2, "text": 2, "handling_minutes": 3, "opened_at": 1, "closed_at": 1},
    "campaign_contact": {"campaign": 3, "selection_group": 2, "control": 3, "contacted_at": 2, "responded": 2},
    "opportunity": {"stage": 2, "closed_at": 1, "amount": 1},
    "product": {"unit_cost": 3, "unit_price": 1, "product": 1, "category": 1},
    "party": {"given_name": 2, "family_names": 2, "full_name": 1, "tax_id": 2, "email": 2, "phone": 2,
              "postcode": 1, "birth_date": 2},
}  # fmt: skip
DATE_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d", "%d/%m/%y", "%d/%m/%Y %H:%M",
                "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M")  # fmt: skip
EXTENSIONS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xls": "excel", ".xlsm": "excel",
              ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}  # fmt: skip


def _key(text: str) -> str:
    t = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]", "", t)


_LOOKUP = {syn: canonical for canonical, syns in SYNONYMS.items() for syn in syns}
#: Headers that identify a customer (a party's source_id, or another record's party_id).
CUSTOMER_IDS = ("codcliente", "codigocliente", "customerid", "clientid", "accountno", "accountnumber", "numcliente",
                "idcliente", "customerref", "customerno", "cliente", "customer", "requesterid", "contactid",
                "respondentid", "authorid", "handle", "memberid", "cardnumber")  # fmt: skip
#: Headers that identify one row of a non-party file (its source_id).
ROW_IDS = (
    "lineref",
    "lineid",
    "lineafactura",
    "ticketid",
    "mentionid",
    "responseid",
    "opportunityid",
    "itemid",
    "rowid",
    "linea",
    "lineno",
    "ticket",
    "id",
    "line",
)  # fmt: skip (most specific first)
#: Prefixes a header may carry before a known name ("Customer First Name", "requester.email").
PREFIXES = ("customer", "cliente", "client", "requester", "contact", "contacto", "ship", "shipping", "billing",
            "envio", "author", "member", "account")  # fmt: skip


def _canonical(header: str) -> str | None:
    """The canonical column a header names, by its synonyms (with or without a prefix)."""
    for key in (_key(header), _key(header.split(".")[-1])):
        if key in _LOOKUP:
            return _LOOKUP[key]
        for prefix in PREFIXES:
            if key.startswith(prefix) and key[len(prefix) :] in _LOOKUP:
                return _LOOKUP[key[len(prefix) :]]
    return None


#: Party columns that, in a file of another kind, make a party source worth deriving from it.
PARTY_DETAILS = ("given_name", "family_names", "full_name", "email", "phone", "postcode", "country", "tax_id")


@dataclass
class Draft:
    """What was sniffed from one file and what is proposed for it."""

    name: str
    path: str
    format: str
    kind: str | None = None
    options: dict = field(default_factory=dict)  # encoding, delimiter, decimal, header_row, ...
    columns: dict = field(default_factory=dict)  # canonical -> raw
    unmapped: list = field(default_factory=list)
    todo: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    sample: pd.DataFrame | None = None
    party_columns: dict = field(default_factory=dict)  # a non-party file's customer details (name, e-mail)


def sniff_csv(path: Path, draft: Draft) -> None:
    from helpers.readers import detect_encoding

    encoding = detect_encoding(path, None)
    draft.options["encoding"] = encoding
    text = path.read_bytes()[:200_000].decode(encoding, errors="replace")
    lines = [line for line in text.splitlines()[:60]]
    candidates = [",", ";", "\t", "|"]

    def consistency(d: str) -> tuple[int, int]:
        """(lines sharing the most common non-zero count of `d`, that count)."""
        counts = Counter(line.count(d) for line in lines if line.strip() and line.count(d))
        return counts.most_common(1)[0][::-1] if counts else (0, 0)

    delimiter = max(candidates, key=lambda d: consistency(d)[::-1])
    draft.options["delimiter"] = delimiter
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    width = Counter(len(r) for r in rows if len(r) > 1).most_common(1)
    width = width[0][0] if width else 1
    header = next(
        (
            i
            for i, r in enumerate(rows)
            if len(r) == width and sum(bool(_text_cell(c)) for c in r) >= 0.6 * width
        ),
        0,
    )
    if header:
        draft.options["header_row"] = header + 1
        draft.todo.append(f"{header} line(s) above the header (a title?): header_row {header + 1} proposed")
    draft.headers = [h.strip() for h in rows[header]] if rows else []
    body = [r for r in rows[header + 1 :] if len(r) == width]
    draft.sample = pd.DataFrame(body, columns=draft.headers) if body else pd.DataFrame(columns=draft.headers)
    tail = [line for line in text.splitlines()[-5:] if line.strip()]
    if tail and re.match(r"^\W*(total|totales|suma)\b", tail[-1], re.IGNORECASE):
        draft.options["footer_rows"] = 1


def _text_cell(c: str) -> bool:
    c = str(c).strip()
    return bool(c) and not re.fullmatch(r"[-+]?[\d.,\s€$£%]+", c)


def sniff_excel(path: Path, draft: Draft) -> None:
    book = pd.ExcelFile(path)
    draft.options["sheet"] = book.sheet_names[0]
    frame = book.parse(book.sheet_names[0], header=None, dtype=object, nrows=2000)
    filled = frame.notna().sum(axis=1)
    width = int(filled.max()) if len(filled) else 0
    header = next(
        (i for i in range(min(30, len(frame))) if filled.iloc[i] >= 0.6 * width
         and sum(isinstance(v, str) and _text_cell(v) for v in frame.iloc[i]) >= 0.6 * filled.iloc[i]),
        0,
    )  # fmt: skip
    names = [str(v).strip() for v in frame.iloc[header] if pd.notna(v)] if len(frame) else []
    if header:
        draft.options["find_header"] = names[:2]
        draft.todo.append(f"{header} row(s) above the header (a title?): find_header proposed")
    draft.headers = names
    body = frame.iloc[header + 1 :].dropna(how="all")
    body = body.loc[:, frame.iloc[header].notna()] if len(frame) else body
    body.columns = names
    if len(body):
        first = str(body.iloc[-1].dropna().iloc[0]) if body.iloc[-1].notna().any() else ""
        if re.match(r"^\W*(total|totales|suma)\b", first, re.IGNORECASE):
            draft.options["footer_rows"] = 1
            body = body.iloc[:-1]
    draft.sample = body.head(500)


def sniff_json(path: Path, draft: Draft, lines: bool) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    if lines:
        objs = [json.loads(x) for x in text.splitlines()[:500] if x.strip()]
    else:
        data = json.loads(text)
        if isinstance(data, dict):
            lists = [k for k, v in data.items() if isinstance(v, list)]
            data = data[lists[0]] if len(lists) == 1 else []
        objs = data[:500] if isinstance(data, list) else []
    objs = [o for o in objs if isinstance(o, dict)]
    nested = Counter(
        k for o in objs for k, v in o.items() if isinstance(v, list) and v and isinstance(v[0], dict)
    )
    if nested:
        key = nested.most_common(1)[0][0]
        draft.options["record_path"] = key
        draft.todo.append(f"each record holds a list `{key}`: record_path proposed (one row per item)")
        rows = [{**{k: v for k, v in o.items() if k != key}, **{f"{key}.{k}": v for k, v in item.items()}}
                for o in objs for item in o.get(key) or [] if isinstance(item, dict)]  # fmt: skip
        draft.sample = pd.json_normalize(rows, sep=".") if rows else pd.DataFrame()
    else:
        draft.sample = pd.json_normalize(objs, sep=".") if objs else pd.DataFrame()
    draft.headers = [str(c) for c in draft.sample.columns]


def _date_format(values: pd.Series) -> str | None:
    vals = [str(v).strip() for v in values.dropna().head(200) if str(v).strip()]
    if not vals:
        return None
    best = None
    for fmt in DATE_FORMATS:
        ok = 0
        for v in vals:
            try:
                datetime.strptime(v, fmt)
                ok += 1
            except ValueError:
                pass
        if ok / len(vals) >= 0.9 and (best is None or ok > best[1]):
            best = (fmt, ok)
    return best[0] if best else None


def propose(draft: Draft) -> None:
    """Canonical columns from the headers, the kind, the decimal mark and the date format."""
    used: set[str] = set()
    proposals: dict[str, str] = {}
    customer_id = next((h for h in draft.headers if _key(h) in CUSTOMER_IDS), None)
    row_ids = [h for h in draft.headers if _key(h) in ROW_IDS]
    row_id = min(row_ids, key=lambda h: ROW_IDS.index(_key(h))) if row_ids else None
    if customer_id is None and row_id is None:  # "Código", "Cod": a code of some kind, the row's own
        row_id = next((h for h in draft.headers if _canonical(h) == "source_id"), None)
    for header in draft.headers:
        if header in (customer_id, row_id):
            continue
        canonical = _canonical(header)
        if canonical and canonical not in used and canonical != "source_id":
            proposals[canonical] = header
            used.add(canonical)
        else:
            draft.unmapped.append(header)
    scores = {k: sum(w for c, w in signs.items() if c in proposals) for k, signs in KIND_SIGNS.items()}
    kind = max(scores, key=lambda k: scores[k])
    if scores[kind] == 0:
        kind = "party"
        draft.todo.append("kind not recognised from the headers: party assumed")
    draft.kind = kind
    if kind in ("party", "product"):
        if customer_id or row_id:
            proposals["source_id"] = customer_id or row_id
    else:
        if row_id:
            proposals["source_id"] = row_id
        if customer_id:
            proposals["party_id"] = customer_id
    for h in (customer_id, row_id):
        if h and h not in proposals.values():
            draft.unmapped.append(h)
    if kind == "interaction":
        draft.options["constants"] = {"type": "ticket"}
        draft.todo.append("constants.type: ticket, survey or mention? (or map a type column)")
    if kind == "transaction" and "amount" not in proposals and {"quantity", "unit_price"} <= set(proposals):
        draft.options["expressions"] = {
            "amount": f'"{proposals["quantity"]}" * "{proposals.pop("unit_price")}"'
        }
    if kind == "product" and "unit_price" in proposals:
        proposals["price"] = proposals.pop("unit_price")
    proposals.pop("unit_price", None)
    allowed = set(schema.KINDS[kind]) - schema.DERIVED.get(kind, set())
    for canonical in list(proposals):
        if canonical not in allowed:
            if kind != "party" and canonical in PARTY_DETAILS:
                draft.party_columns[canonical] = proposals.pop(canonical)
            else:
                draft.unmapped.append(proposals.pop(canonical))
    draft.columns = proposals
    sample = draft.sample if draft.sample is not None else pd.DataFrame()
    numeric = [
        c
        for c in ("amount", "quantity", "score", "price", "unit_cost")
        if c in proposals and proposals[c] in sample
    ]
    texts = (
        pd.concat([sample[proposals[c]].astype(str) for c in numeric]) if numeric else pd.Series(dtype=str)
    )
    if draft.format == "csv" and len(texts):
        comma = texts.str.fullmatch(r"-?\d{1,3}(\.\d{3})*,\d+|-?\d+,\d+").mean()
        if comma > 0.2:
            draft.options["decimal"] = ","
            if texts.str.contains(r"\d\.\d{3},").any():
                draft.options["thousands"] = "."
    for c in (
        "date",
        "birth_date",
        "created_at",
        "updated_at",
        "opened_at",
        "due_date",
        "paid_date",
        "contacted_at",
    ):
        if (
            c in proposals
            and proposals[c] in sample
            and sample[proposals[c]].map(lambda v: isinstance(v, str)).any()
        ):
            fmt = _date_format(sample[proposals[c]])
            if fmt and fmt not in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
                draft.options.setdefault("date_format", fmt)
            elif fmt is None:
                draft.todo.append(
                    f"could not tell the date format of {proposals[c]!r}: set date_format if it is not ISO"
                )
    missing = (
        schema.REQUIRED[kind]
        - set(proposals)
        - set(draft.options.get("expressions", {}))
        - set(draft.options.get("constants", {}))
    )
    for m in sorted(missing):
        draft.todo.append(f"required column {m} not recognised: map it")


def draft_folder(folder: Path) -> list[Draft]:
    drafts = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS):
        rel = path.relative_to(folder).as_posix()
        name = re.sub(r"[^a-z0-9]+", "_", _key_name(rel)).strip("_")
        draft = Draft(name=name, path=rel, format=EXTENSIONS[path.suffix.lower()])
        try:
            if draft.format == "csv":
                sniff_csv(path, draft)
            elif draft.format == "excel":
                sniff_excel(path, draft)
            elif draft.format in ("json", "jsonl"):
                sniff_json(path, draft, draft.format == "jsonl")
            else:
                draft.sample = pd.read_parquet(path).head(500)
                draft.headers = [str(c) for c in draft.sample.columns]
        except Exception as exc:  # a file init cannot read: listed with the reason, to map by hand
            draft.todo.append(f"could not read it ({type(exc).__name__}: {exc}); map it by hand")
        propose(draft)
        drafts.append(draft)
    parties = [d for d in drafts if d.kind == "party"]
    for d in list(drafts):
        if d.kind in ("transaction", "interaction", "campaign_contact", "opportunity"):
            details = [c for c in PARTY_DETAILS if c in d.party_columns]
            if "party_id" in d.columns and len(details) >= 2:
                # the file names its customers (a web shop's orders): a party source from the same file
                derived = Draft(name=f"{d.name}_customers", path=d.path, format=d.format, kind="party")
                derived.options = {
                    k: v for k, v in d.options.items() if k not in ("expressions", "constants", "record_path")
                }
                derived.columns = {
                    "source_id": d.columns["party_id"],
                    **{c: d.party_columns[c] for c in details},
                }
                derived.todo.append(
                    "the customers named in this file, one record per row (unify links repeats)"
                )
                drafts.append(derived)
                d.options["party_source"] = derived.name
                continue
            if parties:
                d.options["party_source"] = parties[0].name
                if len(parties) > 1:
                    d.todo.append(
                        f"party_source: which party file do its customer ids come from? {[p.name for p in parties]}"
                    )
            elif "party_id" in d.columns:
                derived = Draft(name=f"{d.name}_customers", path=d.path, format=d.format, kind="party")
                derived.options = {
                    k: v for k, v in d.options.items() if k not in ("expressions", "date_format")
                }
                derived.columns = {"source_id": d.columns["party_id"]}
                derived.todo.append(
                    "no party file: one customer per customer id of this file (add name, email, ... columns if it has them)"
                )
                drafts.append(derived)
                parties.append(derived)
                d.options["party_source"] = derived.name
    return drafts


def _key_name(rel: str) -> str:
    t = unicodedata.normalize("NFKD", Path(rel).with_suffix("").as_posix()).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", t.lower()).strip("_") or "source"


def render_yaml(drafts: list[Draft], folder: Path) -> str:
    """The drafts as a commented sources.yaml."""
    out = [
        "# Drafted by `scv init` from " + str(folder) + ". Check every line, above all the ones marked TODO,",
        "# then run `scv check`. The options are in README.md, 'Adapting it to your company'.",
        "sources:",
    ]
    for d in drafts:
        out.append(f"  {d.name}:")
        for t in d.todo:
            out.append(f"    # TODO: {t}")
        if d.unmapped:
            out.append(
                f"    # not mapped (map or keep with extra_columns): {', '.join(map(str, d.unmapped[:20]))}"
            )
        system = d.path.split("/")[0] if "/" in d.path else d.name
        body: dict = {"kind": d.kind, "system": system.upper(), "owner": "unassigned", "trust_rank": 1,
                      "format": d.format, "path": d.path}  # fmt: skip
        body.update({k: v for k, v in d.options.items() if k not in ("expressions", "constants")})
        lines = _yaml_lines(body, 4)
        lines += ["    columns:"] + [
            f"      {c}: {json.dumps(raw, ensure_ascii=False)}" for c, raw in d.columns.items()
        ]
        if "constants" in d.options:
            lines += ["    constants:"] + [
                f"      {c}: {json.dumps(v)}" for c, v in d.options["constants"].items()
            ]
        if "expressions" in d.options:
            lines += ["    expressions:"] + [
                f"      {c}: {json.dumps(e, ensure_ascii=False)}" for c, e in d.options["expressions"].items()
            ]
        out += lines
        out.append("")
    return "\n".join(out)


def _yaml_lines(body: dict, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in body.items() if v is not None]
