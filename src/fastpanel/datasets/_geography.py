"""Provinces of mainland China, their macro-region and the national computing-hub cities.

The number of prefecture-level units per province follows the real administrative map closely
(Hubei is trimmed by one so that the total is 336); the four municipalities count as one
city each. Only province names, regions and the hub cities are real: every number attached to
them by the generators is synthetic.
"""

from __future__ import annotations

__all__ = ["PROVINCES", "HUB_CITIES", "REGIONS"]

REGIONS = ("east", "central", "west")

# (province, region, number of prefecture-level cities)
PROVINCES: tuple[tuple[str, str, int], ...] = (
    ("Beijing", "east", 1),
    ("Tianjin", "east", 1),
    ("Hebei", "east", 11),
    ("Shanxi", "central", 11),
    ("Inner Mongolia", "west", 12),
    ("Liaoning", "east", 14),
    ("Jilin", "central", 9),
    ("Heilongjiang", "central", 13),
    ("Shanghai", "east", 1),
    ("Jiangsu", "east", 13),
    ("Zhejiang", "east", 11),
    ("Anhui", "central", 16),
    ("Fujian", "east", 9),
    ("Jiangxi", "central", 11),
    ("Shandong", "east", 16),
    ("Henan", "central", 17),
    ("Hubei", "central", 12),
    ("Hunan", "central", 14),
    ("Guangdong", "east", 21),
    ("Guangxi", "west", 14),
    ("Hainan", "east", 4),
    ("Chongqing", "west", 1),
    ("Sichuan", "west", 21),
    ("Guizhou", "west", 9),
    ("Yunnan", "west", 16),
    ("Tibet", "west", 7),
    ("Shaanxi", "west", 10),
    ("Gansu", "west", 14),
    ("Qinghai", "west", 8),
    ("Ningxia", "west", 5),
    ("Xinjiang", "west", 14),
)

# The 13 cities of the national data-centre clusters ("East Data, West Computing", 2022),
# by province. They take the first city slots of their province.
HUB_CITIES: dict[str, tuple[str, ...]] = {
    "Hebei": ("Zhangjiakou",),
    "Shanghai": ("Shanghai",),
    "Jiangsu": ("Suzhou",),
    "Zhejiang": ("Jiaxing",),
    "Anhui": ("Wuhu",),
    "Guangdong": ("Shaoguan",),
    "Sichuan": ("Chengdu",),
    "Chongqing": ("Chongqing",),
    "Gansu": ("Qingyang",),
    "Ningxia": ("Zhongwei",),
    "Guizhou": ("Gui'an/Guiyang",),
    "Inner Mongolia": ("Horinger/Hohhot", "Jining/Ulanqab"),
}

assert sum(n for _, _, n in PROVINCES) == 336
assert sum(len(v) for v in HUB_CITIES.values()) == 13
