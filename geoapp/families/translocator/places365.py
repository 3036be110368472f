"""Places365 scene categories and their 365 -> 16 -> 3 hierarchy (data only, no torch).

Category names: the 365 categories of Places365-Standard in class-id order
(``categories_places365.txt`` of CSAILVision/places365, MIT licence), e.g. ``/a/airfield``
(shown as "airfield") or ``/a/apartment_building/outdoor`` ("apartment building (outdoor)").

Hierarchy: Places365's scene hierarchy has 3 top-level classes (indoor, outdoor natural,
outdoor man-made: here "indoor", "nature", "urban") and 16 mid-level ones. TransLocator
(Pramanick et al., ECCV 2022) trains on all three levels. The 365 -> 16 and 16 -> 3 tables
below are derived by ``python -m training.scene_hierarchy`` by majority vote over the scene
labels (columns S365_Label, S16_Label, S3_Label) that the TransLocator authors published with
their benchmark ground truth (MIT licence: Im2GPS, Im2GPS3k, YFCC26k CSVs). Their labels were
predicted per image, so a few categories straddle two groups; the tables keep the majority.
"""

from __future__ import annotations

import numpy as np

# Places365-Standard category names, class ids 0..364 in reading order.
_CATEGORY_TEXT = """
/a/airfield /a/airplane_cabin /a/airport_terminal /a/alcove /a/alley /a/amphitheater
/a/amusement_arcade /a/amusement_park /a/apartment_building/outdoor /a/aquarium /a/aqueduct
/a/arcade /a/arch /a/archaelogical_excavation /a/archive /a/arena/hockey /a/arena/performance
/a/arena/rodeo /a/army_base /a/art_gallery /a/art_school /a/art_studio /a/artists_loft
/a/assembly_line /a/athletic_field/outdoor /a/atrium/public /a/attic /a/auditorium /a/auto_factory
/a/auto_showroom /b/badlands /b/bakery/shop /b/balcony/exterior /b/balcony/interior /b/ball_pit
/b/ballroom /b/bamboo_forest /b/bank_vault /b/banquet_hall /b/bar /b/barn /b/barndoor
/b/baseball_field /b/basement /b/basketball_court/indoor /b/bathroom /b/bazaar/indoor
/b/bazaar/outdoor /b/beach /b/beach_house /b/beauty_salon /b/bedchamber /b/bedroom /b/beer_garden
/b/beer_hall /b/berth /b/biology_laboratory /b/boardwalk /b/boat_deck /b/boathouse /b/bookstore
/b/booth/indoor /b/botanical_garden /b/bow_window/indoor /b/bowling_alley /b/boxing_ring /b/bridge
/b/building_facade /b/bullring /b/burial_chamber /b/bus_interior /b/bus_station/indoor
/b/butchers_shop /b/butte /c/cabin/outdoor /c/cafeteria /c/campsite /c/campus /c/canal/natural
/c/canal/urban /c/candy_store /c/canyon /c/car_interior /c/carrousel /c/castle /c/catacomb
/c/cemetery /c/chalet /c/chemistry_lab /c/childs_room /c/church/indoor /c/church/outdoor
/c/classroom /c/clean_room /c/cliff /c/closet /c/clothing_store /c/coast /c/cockpit /c/coffee_shop
/c/computer_room /c/conference_center /c/conference_room /c/construction_site /c/corn_field
/c/corral /c/corridor /c/cottage /c/courthouse /c/courtyard /c/creek /c/crevasse /c/crosswalk /d/dam
/d/delicatessen /d/department_store /d/desert/sand /d/desert/vegetation /d/desert_road
/d/diner/outdoor /d/dining_hall /d/dining_room /d/discotheque /d/doorway/outdoor /d/dorm_room
/d/downtown /d/dressing_room /d/driveway /d/drugstore /e/elevator/door /e/elevator_lobby
/e/elevator_shaft /e/embassy /e/engine_room /e/entrance_hall /e/escalator/indoor /e/excavation
/f/fabric_store /f/farm /f/fastfood_restaurant /f/field/cultivated /f/field/wild /f/field_road
/f/fire_escape /f/fire_station /f/fishpond /f/flea_market/indoor /f/florist_shop/indoor
/f/food_court /f/football_field /f/forest/broadleaf /f/forest_path /f/forest_road /f/formal_garden
/f/fountain /g/galley /g/garage/indoor /g/garage/outdoor /g/gas_station /g/gazebo/exterior
/g/general_store/indoor /g/general_store/outdoor /g/gift_shop /g/glacier /g/golf_course
/g/greenhouse/indoor /g/greenhouse/outdoor /g/grotto /g/gymnasium/indoor /h/hangar/indoor
/h/hangar/outdoor /h/harbor /h/hardware_store /h/hayfield /h/heliport /h/highway /h/home_office
/h/home_theater /h/hospital /h/hospital_room /h/hot_spring /h/hotel/outdoor /h/hotel_room /h/house
/h/hunting_lodge/outdoor /i/ice_cream_parlor /i/ice_floe /i/ice_shelf /i/ice_skating_rink/indoor
/i/ice_skating_rink/outdoor /i/iceberg /i/igloo /i/industrial_area /i/inn/outdoor /i/islet
/j/jacuzzi/indoor /j/jail_cell /j/japanese_garden /j/jewelry_shop /j/junkyard /k/kasbah
/k/kennel/outdoor /k/kindergarden_classroom /k/kitchen /l/lagoon /l/lake/natural /l/landfill
/l/landing_deck /l/laundromat /l/lawn /l/lecture_room /l/legislative_chamber /l/library/indoor
/l/library/outdoor /l/lighthouse /l/living_room /l/loading_dock /l/lobby /l/lock_chamber
/l/locker_room /m/mansion /m/manufactured_home /m/market/indoor /m/market/outdoor /m/marsh
/m/martial_arts_gym /m/mausoleum /m/medina /m/mezzanine /m/moat/water /m/mosque/outdoor /m/motel
/m/mountain /m/mountain_path /m/mountain_snowy /m/movie_theater/indoor /m/museum/indoor
/m/museum/outdoor /m/music_studio /n/natural_history_museum /n/nursery /n/nursing_home /o/oast_house
/o/ocean /o/office /o/office_building /o/office_cubicles /o/oilrig /o/operating_room /o/orchard
/o/orchestra_pit /p/pagoda /p/palace /p/pantry /p/park /p/parking_garage/indoor
/p/parking_garage/outdoor /p/parking_lot /p/pasture /p/patio /p/pavilion /p/pet_shop /p/pharmacy
/p/phone_booth /p/physics_laboratory /p/picnic_area /p/pier /p/pizzeria /p/playground /p/playroom
/p/plaza /p/pond /p/porch /p/promenade /p/pub/indoor /r/racecourse /r/raceway /r/raft
/r/railroad_track /r/rainforest /r/reception /r/recreation_room /r/repair_shop
/r/residential_neighborhood /r/restaurant /r/restaurant_kitchen /r/restaurant_patio /r/rice_paddy
/r/river /r/rock_arch /r/roof_garden /r/rope_bridge /r/ruin /r/runway /s/sandbox /s/sauna
/s/schoolhouse /s/science_museum /s/server_room /s/shed /s/shoe_shop /s/shopfront
/s/shopping_mall/indoor /s/shower /s/ski_resort /s/ski_slope /s/sky /s/skyscraper /s/slum
/s/snowfield /s/soccer_field /s/stable /s/stadium/baseball /s/stadium/football /s/stadium/soccer
/s/stage/indoor /s/stage/outdoor /s/staircase /s/storage_room /s/street /s/subway_station/platform
/s/supermarket /s/sushi_bar /s/swamp /s/swimming_hole /s/swimming_pool/indoor
/s/swimming_pool/outdoor /s/synagogue/outdoor /t/television_room /t/television_studio /t/temple/asia
/t/throne_room /t/ticket_booth /t/topiary_garden /t/tower /t/toyshop /t/train_interior
/t/train_station/platform /t/tree_farm /t/tree_house /t/trench /t/tundra /u/underwater/ocean_deep
/u/utility_room /v/valley /v/vegetable_garden /v/veterinarians_office /v/viaduct /v/village
/v/vineyard /v/volcano /v/volleyball_court/outdoor /w/waiting_room /w/water_park /w/water_tower
/w/waterfall /w/watering_hole /w/wave /w/wet_bar /w/wheat_field /w/wind_farm /w/windmill /y/yard
/y/youth_hostel /z/zen_garden
"""
PLACES365_CATEGORIES: tuple[str, ...] = tuple(_CATEGORY_TEXT.split())

# Level-2 names (Places365 scene hierarchy, in its column order: 6 indoor, 4 natural, 6 man-made).
SCENE16_NAMES: tuple[str, ...] = (
    "shopping and dining",
    "workplace (office, factory, lab)",
    "home or hotel",
    "transportation interiors and stations",
    "indoor sports and leisure",
    "indoor cultural (art, education, religion)",
    "water, ice, snow",
    "mountains, hills, desert, sky",
    "forest, field, jungle",
    "man-made elements",
    "transportation (roads, parking, bridges, boats, airports)",
    "cultural or historical building/place",
    "sports fields, parks, leisure spaces",
    "industrial and construction",
    "houses, cabins, gardens, farms",
    "commercial buildings, shops, markets, cities, towns",
)
SCENE3_NAMES: tuple[str, ...] = ("indoor", "nature", "urban")

# BEGIN GENERATED by `python -m training.scene_hierarchy --write` (do not edit by hand)
# Majority vote over 28834 labelled images (im2gps3k_places365.csv, im2gps_places365.csv, yfcc25600_places365.csv); agreement with them: 365->16 87.1%, 16->3 96.8%, 365->3 94.5%.
MAP_365_TO_16: tuple[int, ...] = (
    10, 3, 3, 2, 15, 11, 4, 12, 15, 5, 11, 5, 11, 11, 5, 4, 4, 4, 11, 5, 5, 5, 5, 1, 12, 1, 2, 5, 1, 0,
    7, 0, 15, 14, 4, 4, 8, 1, 0, 0, 14, 14, 12, 2, 4, 2, 0, 15, 6, 14, 0, 2, 2, 12, 0, 3, 1, 12, 10, 10,
    0, 5, 8, 2, 4, 4, 10, 15, 12, 5, 3, 10, 0, 7, 14, 0, 12, 11, 6, 10, 0, 7, 3, 12, 11, 5, 11, 14, 1, 2,
    5, 11, 5, 1, 7, 2, 0, 6, 3, 0, 1, 5, 1, 13, 8, 14, 1, 14, 11, 11, 6, 6, 15, 6, 0, 0, 7, 7, 10, 15,
    0, 2, 0, 14, 2, 15, 1, 14, 0, 1, 3, 1, 15, 1, 3, 1, 13, 0, 14, 0, 8, 8, 10, 15, 15, 6, 0, 0, 0, 12,
    8, 8, 10, 14, 11, 3, 2, 14, 15, 12, 0, 15, 0, 6, 12, 1, 14, 6, 4, 3, 10, 10, 0, 8, 10, 10, 2, 2, 15, 1,
    6, 15, 2, 14, 14, 0, 6, 6, 4, 12, 6, 6, 13, 15, 6, 4, 5, 14, 0, 13, 11, 14, 5, 2, 6, 6, 13, 10, 2, 12,
    5, 5, 5, 11, 11, 2, 10, 1, 10, 4, 14, 14, 0, 15, 6, 4, 11, 15, 1, 11, 11, 15, 7, 7, 6, 5, 5, 11, 5, 5,
    2, 2, 11, 6, 1, 15, 1, 13, 1, 8, 5, 11, 11, 2, 12, 1, 15, 10, 8, 14, 12, 0, 0, 15, 1, 12, 10, 0, 12, 2,
    15, 6, 12, 12, 0, 12, 12, 6, 10, 8, 1, 2, 1, 15, 0, 0, 15, 8, 6, 7, 14, 12, 11, 10, 12, 4, 15, 5, 1, 14,
    0, 15, 0, 2, 14, 6, 7, 15, 15, 6, 12, 2, 12, 12, 12, 5, 12, 1, 1, 15, 3, 0, 0, 6, 6, 4, 12, 11, 2, 5,
    11, 5, 15, 8, 11, 0, 3, 3, 8, 14, 13, 7, 6, 2, 7, 8, 1, 11, 15, 8, 7, 12, 1, 12, 13, 6, 6, 6, 2, 8,
    13, 13, 14, 2, 14,
)
MAP_16_TO_3: tuple[int, ...] = (
    0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
)
# END GENERATED


def display_name(category: str) -> str:
    """"/a/apartment_building/outdoor" -> "apartment building (outdoor)"; "/a/airfield" -> "airfield"."""
    parts = category.strip("/").split("/")
    if len(parts) >= 2 and len(parts[0]) == 1:  # drop the initial-letter folder
        parts = parts[1:]
    name = parts[0].replace("_", " ")
    qualifier = " ".join(p.replace("_", " ") for p in parts[1:])
    return f"{name} ({qualifier})" if qualifier else name


PLACES365_NAMES: tuple[str, ...] = tuple(display_name(c) for c in PLACES365_CATEGORIES)


def scene_hierarchy() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """(map365to16 int64[365], map16to3 int64[16], names16, names3); fresh arrays on every call."""
    return (np.array(MAP_365_TO_16, dtype=np.int64), np.array(MAP_16_TO_3, dtype=np.int64),
            SCENE16_NAMES, SCENE3_NAMES)
