"""Words of the lesson pages that readers see, in Korean and English."""

# Each language by its own name, in the order of the language switcher.
LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}

STRINGS = {
    "ko": {
        "lesson_of": "레슨 {number:02d} / {planned}",
        "status": {"published": "공개", "draft": "초안"},
        "minutes": "약 {minutes}분",
        "tags": "태그",
        "previous": "이전 레슨",
        "next": "다음 레슨",
        "exercises": "연습 문제",
        "links": "참고 링크",
        "report": "오류를 발견했거나 의견이 있나요? 문제 신고하기",
        "untranslated": "이 레슨은 아직 영어로 번역되지 않아 한국어 원문을 보여 줍니다.",
        "stream_lessons": "이 스트림의 레슨",
        "streams": "스트림",
        "lessons_count": "레슨 {count}개 공개 / 전체 {planned}개 예정",
        "lesson_navigation": "레슨 이동",
    },
    "en": {
        "lesson_of": "Lesson {number:02d} of {planned}",
        "status": {"published": "published", "draft": "draft"},
        "minutes": "~{minutes} min",
        "tags": "Tags",
        "previous": "Previous lesson",
        "next": "Next lesson",
        "exercises": "Exercises",
        "links": "Links",
        "report": "Found a bug or have feedback? Report a problem",
        "untranslated": "This lesson is not translated into English yet, so the Korean original is shown.",
        "stream_lessons": "Lessons in this stream",
        "streams": "Streams",
        "lessons_count": "{count} lessons published of {planned} planned",
        "lesson_navigation": "Lesson navigation",
    },
}
