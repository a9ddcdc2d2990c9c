"""The catalogue: offers (token packs, bundles, plans) with their prices, the periods
they credit, and catalogue files."""
