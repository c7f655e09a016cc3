"""An 86 (``product.template.api_sold_out``) became per company: the boolean
column becomes the jsonb column of a company-dependent field, a product
86'd before staying 86'd in every company."""


def migrate(cr, version):
    cr.execute(
        """
        SELECT data_type FROM information_schema.columns
         WHERE table_name = 'product_template' AND column_name = 'api_sold_out'
        """
    )
    row = cr.fetchone()
    if not row or row[0] != "boolean":
        return
    cr.execute(
        """
        ALTER TABLE product_template RENAME COLUMN api_sold_out TO api_sold_out_boolean;
        ALTER TABLE product_template ADD COLUMN api_sold_out jsonb;
        UPDATE product_template
           SET api_sold_out = (SELECT jsonb_object_agg(id::text, true) FROM res_company)
         WHERE api_sold_out_boolean;
        ALTER TABLE product_template DROP COLUMN api_sold_out_boolean;
        """
    )
