"""Prepares the product search benchmark inside ``odoo shell``.

Fed on stdin to ``python -m odoo shell -d DB --no-http`` by ``bench/run
--search``. It adds ``BENCH_PRODUCTS`` (50,000) products to the demo
restaurant's menu, with seeded names (two or three words of a food
vocabulary and a number), internal references ``BS-000001`` and 13-digit
barcodes (numbered from ``BENCH_FIRST``, 1), then builds the seeded query
mix (exact names, one-letter typos, prefixes, references, barcodes),
issues a token pair for the demo waiter tablet, commits and prints ``BENCH_FIXTURE {json}``.

Products are made fast: one demo product is created through the ORM as the
seed, and its template and variant rows are copied in SQL (every column but
the id, the name, the reference and the barcode), with its POS category
link; the trigram indexes are maintained by PostgreSQL as the rows go in.
Odoo's caches are then invalidated, as after any SQL write. The seed's
creation through the ORM moves the addon's menu version at commit, so a
server already running serves the grown catalog from its next request.
"""

import json
import os
import random

PRODUCTS = int(os.environ.get("BENCH_PRODUCTS", "50000"))
# The number of the first product added (a catalog grown in several steps
# keeps its references and barcodes unique).
FIRST = int(os.environ.get("BENCH_FIRST", "1"))
QUERIES = int(os.environ.get("BENCH_QUERIES", "400"))
SEED = 20261202

WORDS = [
    "burger",
    "cheese",
    "chicken",
    "beef",
    "pork",
    "lamb",
    "salmon",
    "tuna",
    "shrimp",
    "tofu",
    "pasta",
    "pizza",
    "risotto",
    "salad",
    "soup",
    "bread",
    "garlic",
    "tomato",
    "basil",
    "pesto",
    "cream",
    "mushroom",
    "truffle",
    "pepper",
    "chili",
    "lemon",
    "orange",
    "mango",
    "apple",
    "berry",
    "chocolate",
    "vanilla",
    "caramel",
    "coffee",
    "espresso",
    "latte",
    "tea",
    "mint",
    "ginger",
    "honey",
    "butter",
    "olive",
    "onion",
    "potato",
    "rice",
    "noodle",
    "curry",
    "kebab",
    "taco",
    "wrap",
    "sandwich",
    "steak",
    "grilled",
    "fried",
    "smoked",
    "roasted",
    "spicy",
    "sweet",
    "crispy",
    "classic",
    "house",
    "special",
    "deluxe",
]


def _names(rng, count):
    for number in range(FIRST, FIRST + count):
        words = rng.sample(WORDS, rng.choice((2, 2, 3)))
        yield number, " ".join(word.capitalize() for word in words) + f" {number}"


def _typo(rng, text):
    word = max(text.split(), key=len)
    position = rng.randrange(1, len(word) - 1)
    return word[:position] + word[position + 1 :]  # one letter dropped


def _insert_products(env, config):
    cr = env.cr
    seed = env["product.product"].create(
        {
            "name": "Bench Seed",
            "available_in_pos": True,
            "sale_ok": True,
            "list_price": 9.5,
            "pos_categ_ids": [(6, 0, config.iface_available_categ_ids[:1].ids)],
        }
    )
    env.flush_all()

    def columns(table):
        cr.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = %s AND column_name NOT IN ('id', 'name', 'default_code', "
            "'barcode', 'product_tmpl_id') ORDER BY ordinal_position",
            [table],
        )
        return [row[0] for row in cr.fetchall()]

    rng = random.Random(SEED)
    rows = list(_names(rng, PRODUCTS))
    cr.execute("CREATE TEMP TABLE bench_names (n int, name text) ON COMMIT DROP")
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        cr.execute(
            "INSERT INTO bench_names VALUES " + ",".join(["(%s, %s)"] * len(chunk)),
            [value for row in chunk for value in row],
        )
    template_columns = columns("product_template")
    cr.execute(
        f"""
        INSERT INTO product_template (name, {", ".join(f'"{c}"' for c in template_columns)})
        SELECT jsonb_build_object('en_US', b.name),
               {", ".join(f't."{c}"' for c in template_columns)}
          FROM bench_names b, product_template t WHERE t.id = %s
        RETURNING id, name->>'en_US'
        """,
        [seed.product_tmpl_id.id],
    )
    number_of = {name: number for number, name in rows}
    created = cr.fetchall()
    cr.execute("CREATE TEMP TABLE bench_templates (id int, n int) ON COMMIT DROP")
    cr.execute(
        "INSERT INTO bench_templates SELECT * FROM unnest(%s::int[], %s::int[])",
        [[tid for tid, _name in created], [number_of[name] for _tid, name in created]],
    )
    variant_columns = columns("product_product")
    cr.execute(
        f"""
        INSERT INTO product_product (product_tmpl_id, default_code, barcode,
                                     {", ".join(f'"{c}"' for c in variant_columns)})
        SELECT bt.id, 'BS-' || lpad(bt.n::text, 6, '0'), '20' || lpad(bt.n::text, 11, '0'),
               {", ".join(f'p."{c}"' for c in variant_columns)}
          FROM bench_templates bt, product_product p WHERE p.id = %s
        """,
        [seed.id],
    )
    cr.execute(
        """
        INSERT INTO pos_category_product_template_rel (product_template_id, pos_category_id)
        SELECT bt.id, r.pos_category_id FROM bench_templates bt,
               pos_category_product_template_rel r WHERE r.product_template_id = %s
        """,
        [seed.product_tmpl_id.id],
    )
    cr.execute("ANALYZE product_template; ANALYZE product_product")
    env.invalidate_all()
    env.registry.clear_cache()
    return rows


def _queries(rows):
    rng = random.Random(SEED + 1)
    kinds = ("exact", "typo", "prefix", "reference", "barcode")
    mix = []
    for index in range(QUERIES):
        kind = kinds[index % len(kinds)]
        number, name = rows[rng.randrange(len(rows))]
        text = {
            "exact": name,
            "typo": _typo(rng, name),
            "prefix": name[:4],
            "reference": f"BS-{number:06d}",
            "barcode": "20" + f"{number:011d}",
        }[kind]
        mix.append({"kind": kind, "q": text})
    return mix


def main(env):
    config = env.ref("point_of_sale_api.demo_pos_config")
    rows = _insert_products(env, config)
    device = env.ref("point_of_sale_api.demo_device_waiter")
    fixture = {
        "products": PRODUCTS,
        "catalog": env["product.product"].search_count(
            [*config._get_available_product_domain(), ("type", "!=", "combo")]
        ),
        "config_id": config.id,
        "queries": _queries(rows),
        "access_token": device._issue_tokens().access_token,
    }
    env.cr.commit()
    print("BENCH_FIXTURE " + json.dumps(fixture), flush=True)


main(env)  # noqa: F821 - provided by odoo shell
