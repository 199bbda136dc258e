-- A returned row is a model whose events have no cost of their own and no price in effect at
-- their created_at: they are rejected (reject_reason unpriced_model), not priced at zero. Add the
-- model's prices to seeds/model_prices_custom.csv, then `costwatch run --full-refresh`.
{{ config(severity='warn') }}

select * from {{ ref('unpriced_models') }}
